"""Plain-PyTorch training with batched on-device augmentation. Knows neither Ray nor MLflow.

``train(config, data, policy, report)`` calls ``report(metrics)`` once per epoch. The data stays on the
device as uint8 tensors; each batch is indexed, augmented and normalized there (:mod:`autoaug.train.batches`), and
the model computes in the run's precision (:mod:`autoaug.train.precision`). Validation runs at the epochs
:meth:`TrainConfig.validates` names.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from autoaug.augment.adaptive import controller_for
from autoaug.augment.policy import Policy
from autoaug.augment.presets import resolve_policy
from autoaug.data.datasets import DatasetSplits
from autoaug.data.synthetic import Generator
from autoaug.errors import AutoaugError, choice_error
from autoaug.seeding import derive_seed, make_generator
from autoaug.train.batches import Batches, Stopwatch, synthetic_generator, to_float
from autoaug.train.models import Normalize, build_model, check_model
from autoaug.train.precision import PRECISIONS, Precision, resolve_precision

OPTIMIZERS = ("adam", "adamw", "sgd")
LR_SCHEDULES = ("constant", "cosine")
Report = Callable[[dict[str, Any]], None]


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite."""


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one training run. Validated on construction."""

    model: str = "smallcnn"
    epochs: int = 10
    batch_size: int = 256
    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9
    lr_schedule: str = "cosine"
    warmup: float = 0.0  # the share of the steps over which the rate rises linearly from 0 (then its schedule)
    seed: int = 0
    device: str = "auto"
    eval_batch_size: int = 1024
    precision: str = "auto"  # auto, fp32, bf16 or fp16 (autoaug.train.precision)
    compile: bool = False  # torch.compile the model
    val_every: int | None = None  # validate every N epochs and after the last; None: about 10 times a run
    weights: str | None = None  # pretrained weights of a timm model: "hub" or a state dict file (train.weights)
    aug_chunk: int | None = None  # batches augmented per call; None: train.batches.chunk_batches (1 for controllers)

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise choice_error("precision", self.precision, PRECISIONS)
        for name in ("val_every", "aug_chunk"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise AutoaugError(f"{name} {value!r} must be a positive integer or None")
        if self.optimizer not in OPTIMIZERS:
            raise choice_error("optimizer", self.optimizer, OPTIMIZERS)
        if self.lr_schedule not in LR_SCHEDULES:
            raise choice_error("lr schedule", self.lr_schedule, LR_SCHEDULES)
        for name in ("epochs", "batch_size", "eval_batch_size"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise AutoaugError(f"{name} {getattr(self, name)!r} must be a positive integer")
        if not (isinstance(self.warmup, int | float) and 0 <= self.warmup < 1):
            raise AutoaugError(f"warmup {self.warmup!r} must be a share of the steps in [0, 1)")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise AutoaugError(f"lr {self.lr!r} must be a positive number")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise AutoaugError(f"weight_decay {self.weight_decay!r} must be >= 0")
        resolve_device(self.device)
        check_model(self.model)
        if self.weights is not None and not self.model.startswith("timm:"):
            raise AutoaugError(f"pretrained weights need a timm model (timm:NAME); {self.model!r} is autoaug's own")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def validates(self, epoch: int) -> bool:
        """Whether epoch ``epoch`` (1-based) ends with a validation: every ``val_every`` epochs (default: a tenth
        of the run, at least 1) and always the last."""
        every = self.val_every or max(1, self.epochs // 10)
        return epoch % every == 0 or epoch >= self.epochs


@dataclass
class TrainResult:
    """The trained model (normalization included: it takes float images in [0, 1]) and its per-epoch history."""

    model: nn.Module
    history: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    precision: str = "fp32"  # what ``auto`` resolved to


def resolve_device(device: str) -> torch.device:
    """``auto`` → ``cuda`` when available, else ``cpu``; other values are checked."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise AutoaugError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise AutoaugError(f"device {device!r} is not available on this machine; use auto or cpu")
    return dev


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """Logits ``[N, K]`` for uint8 images ``x [N, C, H, W]`` (moved to the model's device in batches)."""
    model.eval()
    device = next(model.parameters()).device
    return torch.cat([model(to_float(x[i : i + batch_size].to(device))) for i in range(0, len(x), batch_size)])


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1024) -> dict[str, float]:
    """``{"loss", "acc"}`` of ``model`` on uint8 images ``x`` with labels ``y``."""
    if len(y) == 0:
        return {"loss": float("nan"), "acc": float("nan")}
    logits = predict(model, x, batch_size)
    y = y.to(logits.device)
    return {"loss": F.cross_entropy(logits, y).item(), "acc": (logits.argmax(1) == y).float().mean().item()}


def channel_stats(x: torch.Tensor, chunk_pixels: int = 2**21) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and (sample) std ``[C]`` of uint8 images ``x [N, C, H, W]`` scaled to ``[0, 1]``,
    accumulated in float64 over chunks of about ``chunk_pixels`` values (16 MB), so no float copy of the whole
    set is ever made."""
    c = x.shape[1]
    chunk = max(1, chunk_pixels // max(x[0].numel(), 1))
    total = torch.zeros(c, dtype=torch.float64)
    squares = torch.zeros(c, dtype=torch.float64)
    for i in range(0, len(x), chunk):
        pixels = x[i : i + chunk].to(torch.float64).div_(255).transpose(0, 1).reshape(c, -1)
        total += pixels.sum(1).cpu()
        squares += pixels.square().sum(1).cpu()
    n = x.numel() // c
    mean = total / n
    var = (squares - n * mean.square()) / max(n - 1, 1)
    return mean.float(), var.clamp(min=0).sqrt().float()


def lr_factor(step: int, total: int, warmup: int, cosine: bool) -> float:
    """The learning rate at ``step`` of ``total`` as a share of the configured one: rising linearly over the first
    ``warmup`` steps (from ``1 / warmup``), then constant or a cosine from 1 to 0 over the rest."""
    if step < warmup:
        return (step + 1) / warmup
    if not cosine:
        return 1.0
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def _optimizer(config: TrainConfig, params: Any) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay,
                               nesterov=True)
    cls = torch.optim.Adam if config.optimizer == "adam" else torch.optim.AdamW
    return cls(params, lr=config.lr, weight_decay=config.weight_decay)


class Trainer:
    """One training run, an epoch at a time: ``run_epoch()`` returns that epoch's metrics.

    The trainer owns the model (wrapped for its precision), the optimizer, the learning-rate schedule and
    the gradient scaler; :class:`~autoaug.train.batches.Batches` owns the data it sees. ``state_dict()`` /
    ``load_state_dict()`` checkpoint everything a resumed run needs; ``policy`` may be replaced between
    epochs (PBT). A policy with an adaptive schedule gets its controller (:mod:`autoaug.augment.adaptive`); AugNet's
    held-out batch is taken out of the training split.
    """

    def __init__(self, config: TrainConfig, data: DatasetSplits, policy: Policy | str = "none",
                 generators: Mapping[str, Generator] | None = None) -> None:
        self.config, self.data = config, data
        self.device = device = resolve_device(config.device)
        self.precision: Precision = resolve_precision(config.precision, device)
        policy = resolve_policy(policy)
        c, h, w = data.image_shape
        torch.manual_seed(derive_seed(config.seed, "init"))
        net = build_model(config.model, c, data.num_classes, min(h, w), weights=config.weights)
        self.controller = controller_for(policy, derive_seed(config.seed, "controller"))
        train_x, train_y = data.train_x, data.train_y
        if self.controller is not None and self.controller.holdout:
            train_x, train_y = self._hold_out(train_x, train_y, self.controller.holdout)
        if self.controller is not None and self.controller.validation:
            order = torch.randperm(len(data.val_y), generator=make_generator(derive_seed(config.seed, "validation")))
            pick = order[: self.controller.validation]
            self.controller.set_validation(to_float(data.val_x[pick].to(device)), data.val_y[pick].to(device))  # type: ignore[attr-defined]
        self.val_x, self.val_y = data.val_x.to(device), data.val_y.to(device)
        self.model = self.precision.wrap(nn.Sequential(Normalize(*channel_stats(train_x)), net).to(device))
        if config.compile:
            self.model.module = torch.compile(self.model.module)  # type: ignore[assignment]
        self.batches = Batches(train_x, train_y, batch_size=config.batch_size, num_classes=data.num_classes,
                               policy=policy, seed=config.seed, device=device, controller=self.controller,
                               synthetic=synthetic_generator(policy, data, config.seed, device, generators or {}),
                               chunk=config.aug_chunk)
        total_steps = self.batches.steps * config.epochs
        self.opt = _optimizer(config, self.model.parameters())
        warmup, cosine = round(config.warmup * total_steps), config.lr_schedule == "cosine"
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, functools.partial(
            lr_factor, total=total_steps, warmup=warmup, cosine=cosine))
        self.scaler = self.precision.grad_scaler()
        self.control_timer = Stopwatch(device)
        self.epoch = 0
        self.history: list[dict[str, Any]] = []

    @property
    def policy(self) -> Policy:
        return self.batches.policy

    @policy.setter
    def policy(self, policy: Policy) -> None:
        self.batches.policy = policy

    def _hold_out(self, x: torch.Tensor, y: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Give ``size`` seeded random training images to the controller; returns the rest."""
        if size > len(y) // 4:
            raise AutoaugError(f"held-out batch of {size} images is more than a quarter of the {len(y)} training "
                               f"images; lower the schedule's 'holdout'")
        order = torch.randperm(len(y), generator=make_generator(derive_seed(self.config.seed, "holdout")))
        held, keep = order[:size], order[size:].sort().values
        self.controller.set_holdout(to_float(x[held].to(self.device)), y[held].to(self.device))  # type: ignore[union-attr]
        return x[keep], y[keep]

    def _step(self, xb: torch.Tensor, yb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimizer step on images ``xb`` with labels, or soft targets ``[B, K]``, ``yb``; the batch's loss and
        number of correct predictions, on the device."""
        logits = self.model(xb)
        loss = F.cross_entropy(logits, yb)
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.opt)
        self.scaler.update()
        if self.sched:
            self.sched.step()
        labels = yb.argmax(1) if yb.is_floating_point() else yb  # soft targets of mixed batches: the larger share
        return loss.detach(), (logits.argmax(1) == labels).sum()

    def run_epoch(self) -> dict[str, Any]:
        """Train one epoch and validate where the config says; returns its metrics (see :func:`train`)."""
        cfg, model, epoch, batches = self.config, self.model, self.epoch, self.batches
        steps = batches.steps
        t0 = time.perf_counter()
        logged = batches.magnitudes(epoch / cfg.epochs)
        model.train()
        lr = self.opt.param_groups[0]["lr"]
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        for i, (xb, yb) in enumerate(batches.epoch(epoch, cfg.epochs)):
            loss, right = self._step(xb, yb)
            loss_sum += loss
            correct += right
            if self.controller is not None:
                with self.control_timer:
                    self.controller.after_step(model, epoch * steps + i + 1)
        train_loss = loss_sum.item() / steps
        if not math.isfinite(train_loss):
            raise TrainingDiverged(f"training loss became {train_loss} in epoch {epoch + 1}")
        aug_s, control_s = batches.aug_timer.total(), self.control_timer.total()
        synthetic_s = batches.synthetic_timer.total()
        train_s = time.perf_counter() - t0
        metrics = {
            "epoch": epoch + 1,
            "train_loss": train_loss,
            "train_acc": correct.item() / (steps * batches.size),
            "lr": lr,
            "images_per_second": steps * batches.size / train_s,
            "aug_ms_per_batch": 1000 * aug_s / steps,
            "aug_seconds": aug_s,
            "control_seconds": control_s,
            "synthetic_seconds": synthetic_s,
            "synthetic_share": batches.fake / batches.size,
            **logged,
        }
        # the feedback controller and AugNet read every epoch's validation
        if self.controller is not None or cfg.validates(epoch + 1):
            t1 = time.perf_counter()
            val = evaluate(model, self.val_x, self.val_y, cfg.eval_batch_size)
            metrics.update(val_loss=val["loss"], val_acc=val["acc"], val_seconds=time.perf_counter() - t1)
        if self.controller is not None:
            t1 = time.perf_counter()
            metrics.update(self.controller.after_epoch(epoch + 1, metrics))
            metrics["control_seconds"] += time.perf_counter() - t1
        metrics["epoch_seconds"] = time.perf_counter() - t0
        if self.device.type == "cuda":  # the allocator's own count: no device sync
            metrics["gpu_memory_mb"] = torch.cuda.max_memory_allocated(self.device) / 2**20
        self.history.append(metrics)
        self.epoch += 1
        return metrics

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume after ``self.epoch`` epochs (not an adaptive controller's state)."""
        if self.controller is not None:
            raise AutoaugError(f"a run with the adaptive schedule {self.policy.schedule.kind!r} cannot be checkpointed")
        return {"epoch": self.epoch, "model": self.model.state_dict(), "opt": self.opt.state_dict(),
                "sched": self.sched.state_dict() if self.sched else None, "scaler": self.scaler.state_dict(),
                "batches": self.batches.state_dict(), "history": self.history,
                "torch_rng": torch.get_rng_state(),  # dropout draws from the global generator
                "cuda_rng": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restores :meth:`state_dict`, whatever device ``torch.load`` mapped its tensors to."""
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["opt"])
        if self.sched and state["sched"]:
            self.sched.load_state_dict(state["sched"])
        if state["scaler"]:
            self.scaler.load_state_dict(state["scaler"])
        self.batches.load_state_dict(state["batches"])
        torch.set_rng_state(state["torch_rng"].cpu())
        if self.device.type == "cuda" and state["cuda_rng"] is not None:
            torch.cuda.set_rng_state(state["cuda_rng"].cpu(), self.device)
        self.epoch, self.history = state["epoch"], list(state["history"])


def train(config: TrainConfig, data: DatasetSplits, policy: Policy | str = "none",
          report: Report | None = None) -> TrainResult:
    """Train ``config.model`` on ``data.train`` with ``policy``; validate on ``data.val`` every epoch.

    ``report(metrics)`` gets, per epoch: ``epoch, train_loss, train_acc, lr, magnitude`` (the magnitude factor
    in force at the epoch's start), ``magnitude/OP`` (each op's magnitude), ``epoch_seconds`` (training and
    validation), ``images_per_second, aug_ms_per_batch, aug_seconds, control_seconds`` (time spent in an
    adaptive controller), the controller's own values, and on the epochs that validate (see
    :meth:`TrainConfig.validates`) ``val_loss, val_acc, val_seconds``. Raises :class:`TrainingDiverged` on a NaN loss.
    The test split is never touched here.
    """
    trainer = Trainer(config, data, policy)
    result = TrainResult(model=trainer.model, precision=trainer.precision.name)
    start = time.perf_counter()
    while trainer.epoch < config.epochs:
        metrics = trainer.run_epoch()
        if report is not None:
            report(metrics)
    result.history, result.seconds = trainer.history, time.perf_counter() - start
    return result
