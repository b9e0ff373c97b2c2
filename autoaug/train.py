"""Plain-PyTorch training with batched on-device augmentation. Knows neither Ray nor MLflow.

``train(config, data, policy, report)`` calls ``report(metrics)`` once per epoch. The data stays on the
device as uint8 tensors; each batch is indexed, augmented and normalized there.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from autoaug.adaptive import controller_for
from autoaug.augment import apply, sample
from autoaug.datasets import DatasetSplits
from autoaug.errors import AutoaugError, choice_error
from autoaug.models import Normalize, build_model, check_model
from autoaug.policy import Policy, resolve_policy
from autoaug.seeding import derive_seed, make_generator
from autoaug.synthetic import Generator, generator_for

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
    seed: int = 0
    device: str = "auto"
    eval_batch_size: int = 256

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise choice_error("optimizer", self.optimizer, OPTIMIZERS)
        if self.lr_schedule not in LR_SCHEDULES:
            raise choice_error("lr schedule", self.lr_schedule, LR_SCHEDULES)
        for name in ("epochs", "batch_size", "eval_batch_size"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise AutoaugError(f"{name} {getattr(self, name)!r} must be a positive integer")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise AutoaugError(f"lr {self.lr!r} must be a positive number")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise AutoaugError(f"weight_decay {self.weight_decay!r} must be >= 0")
        resolve_device(self.device)
        check_model(self.model)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrainResult:
    """The trained model (normalization included: it takes float images in [0, 1]) and its per-epoch history."""

    model: nn.Module
    history: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


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


def _to_float(x: torch.Tensor) -> torch.Tensor:
    return x.float().div_(255)


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Logits ``[N, K]`` for uint8 images ``x [N, C, H, W]`` (moved to the model's device in batches)."""
    model.eval()
    device = next(model.parameters()).device
    return torch.cat([model(_to_float(x[i : i + batch_size].to(device))) for i in range(0, len(x), batch_size)])


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 256) -> dict[str, float]:
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


class _AugTimer:
    """Accumulates augmentation time without a device sync per batch (CUDA events on the GPU)."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.seconds, self.events = 0.0, []

    def __enter__(self) -> _AugTimer:
        if self.cuda:
            self.events.append((torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)))
            self.events[-1][0].record()
        else:
            self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.cuda:
            self.events[-1][1].record()
        else:
            self.seconds += time.perf_counter() - self.t0

    def total(self) -> float:
        if self.cuda:
            torch.cuda.synchronize()
            self.seconds += sum(a.elapsed_time(b) for a, b in self.events) / 1000
            self.events.clear()
        total, self.seconds = self.seconds, 0.0
        return total


def _optimizer(config: TrainConfig, params: Any) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay,
                               nesterov=True)
    cls = torch.optim.Adam if config.optimizer == "adam" else torch.optim.AdamW
    return cls(params, lr=config.lr, weight_decay=config.weight_decay)


class Trainer:
    """One training run, an epoch at a time: ``run_epoch()`` returns that epoch's metrics.

    ``state_dict()`` / ``load_state_dict()`` checkpoint everything a resumed run needs (model, optimizer,
    learning-rate schedule, random generators, history); ``policy`` may be replaced between epochs (PBT).
    A policy with an adaptive schedule gets its controller (:mod:`autoaug.adaptive`); AugNet's held-out
    batch is taken out of the training split.
    """

    def __init__(self, config: TrainConfig, data: DatasetSplits, policy: Policy | str = "none",
                 generators: Mapping[str, Generator] | None = None) -> None:
        self.config, self.data, self.policy = config, data, resolve_policy(policy)
        self.device = device = resolve_device(config.device)
        c, h, w = data.image_shape
        torch.manual_seed(derive_seed(config.seed, "init"))
        net = build_model(config.model, c, data.num_classes, min(h, w))
        self.controller = controller_for(self.policy, derive_seed(config.seed, "controller"))
        train_x, train_y = data.train_x, data.train_y
        if self.controller is not None and self.controller.holdout:
            train_x, train_y = self._hold_out(train_x, train_y, self.controller.holdout)
        if self.controller is not None and self.controller.validation:
            order = torch.randperm(len(data.val_y), generator=make_generator(derive_seed(config.seed, "validation")))
            pick = order[: self.controller.validation]
            self.controller.set_validation(_to_float(data.val_x[pick].to(device)), data.val_y[pick].to(device))  # type: ignore[attr-defined]
        self.x, self.y = train_x.to(device), train_y.to(device)
        self.model = nn.Sequential(Normalize(*channel_stats(train_x)), net).to(device)

        n = len(self.y)
        self.batch_size = min(config.batch_size, n)
        self.synthetic, self.fake = self._generator(generators or {}), 0
        if self.synthetic is not None:  # `fake` of every batch are generated; every epoch still sees each real image
            self.fake = min(round(self.policy.synthetic.ratio * self.batch_size), self.batch_size - 1)  # type: ignore[union-attr]
            self.synthetic_rng = make_generator(derive_seed(config.seed, "synthetic"), device)
        self.steps = n // (self.batch_size - self.fake)  # drop the last partial batch (BatchNorm needs > 1 sample)
        total_steps = self.steps * config.epochs
        self.opt = _optimizer(config, self.model.parameters())
        cosine = lambda s: 0.5 * (1 + math.cos(math.pi * s / total_steps))  # noqa: E731
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, cosine) if config.lr_schedule == "cosine" else None
        self.augment_rng = make_generator(derive_seed(config.seed, "augment"), device)
        self.shuffle = make_generator(derive_seed(config.seed, "shuffle"))
        self.aug_timer, self.control_timer, self.synthetic_timer = (_AugTimer(device) for _ in range(3))
        self.epoch = 0
        self.history: list[dict[str, Any]] = []

    def _generator(self, given: Mapping[str, Generator]) -> Generator | None:
        """The generator a policy's ``synthetic`` setting asks for: given, else the cached one (trained now if
        there is none) for this training split and seed."""
        syn = self.policy.synthetic
        if syn is None or syn.ratio == 0:
            return None
        if syn.generator in given:
            return given[syn.generator].to(self.device)
        return generator_for(syn.generator, self.data, seed=self.config.seed, epochs=syn.epochs, device=self.device,
                             echo=lambda line: None)[0]

    def _batch(self, idx: torch.Tensor, progress: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Real images ``idx`` plus ``self.fake`` generated ones with uniform labels, augmented as the policy says."""
        xb, yb = _to_float(self.x[idx]), self.y[idx]
        if self.synthetic is None:
            with self.aug_timer:
                return self._augment(xb, progress), yb
        with self.synthetic_timer:
            labels = torch.randint(self.data.num_classes, (self.fake,), generator=self.synthetic_rng,
                                   device=self.device)
            fake = self.synthetic.sample(labels, self.synthetic_rng)
        with self.aug_timer:
            if self.policy.synthetic.augment:  # type: ignore[union-attr]
                return self._augment(torch.cat([xb, fake]), progress), torch.cat([yb, labels])
            return torch.cat([self._augment(xb, progress), fake]), torch.cat([yb, labels])

    def _hold_out(self, x: torch.Tensor, y: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Give ``size`` seeded random training images to the controller; returns the rest."""
        if size > len(y) // 4:
            raise AutoaugError(f"held-out batch of {size} images is more than a quarter of the {len(y)} training "
                               f"images; lower the schedule's 'holdout'")
        order = torch.randperm(len(y), generator=make_generator(derive_seed(self.config.seed, "holdout")))
        held, keep = order[:size], order[size:].sort().values
        self.controller.set_holdout(_to_float(x[held].to(self.device)), y[held].to(self.device))  # type: ignore[union-attr]
        return x[keep], y[keep]

    def _augment(self, xb: torch.Tensor, progress: float) -> torch.Tensor:
        policy, factor = self.controller.current(progress) if self.controller else (self.policy, None)
        if not policy.at(progress).ops:
            return xb
        return apply(xb, sample(policy, xb.shape, progress, self.augment_rng, self.device, factor))

    def _magnitudes(self, progress: float) -> dict[str, float]:
        """The magnitude factor and each op's magnitude in force at ``progress``, for the logs."""
        policy, factor = self.controller.current(progress) if self.controller else (self.policy, None)
        factor = policy.schedule.factor(progress) if factor is None else factor
        return {"magnitude": factor, **{f"magnitude/{k}": v for k, v in policy.magnitudes(progress, factor).items()}}

    def run_epoch(self) -> dict[str, Any]:
        """Train one epoch and validate; returns its metrics (see :func:`train`)."""
        cfg, model, epoch, steps, bs = self.config, self.model, self.epoch, self.steps, self.batch_size
        real = bs - self.fake
        t0 = time.perf_counter()
        logged = self._magnitudes(epoch / cfg.epochs)
        model.train()
        lr = self.opt.param_groups[0]["lr"]
        perm = torch.randperm(len(self.y), generator=self.shuffle).to(self.device)
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        for i in range(steps):
            xb, yb = self._batch(perm[i * real : (i + 1) * real], (epoch + i / steps) / cfg.epochs)
            logits = model(xb)
            loss = F.cross_entropy(logits, yb)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            if self.sched:
                self.sched.step()
            loss_sum += loss.detach()
            correct += (logits.argmax(1) == yb).sum()
            if self.controller is not None:
                with self.control_timer:
                    self.controller.after_step(model, epoch * steps + i + 1)
        train_loss = loss_sum.item() / steps
        if not math.isfinite(train_loss):
            raise TrainingDiverged(f"training loss became {train_loss} in epoch {epoch + 1}")
        aug_s, control_s, synthetic_s = self.aug_timer.total(), self.control_timer.total(), self.synthetic_timer.total()
        epoch_s = time.perf_counter() - t0
        val = evaluate(model, self.data.val_x, self.data.val_y, cfg.eval_batch_size)
        metrics = {
            "epoch": epoch + 1,
            "train_loss": train_loss,
            "train_acc": correct.item() / (steps * bs),
            "val_loss": val["loss"],
            "val_acc": val["acc"],
            "lr": lr,
            "epoch_seconds": epoch_s,
            "images_per_second": steps * bs / epoch_s,
            "aug_ms_per_batch": 1000 * aug_s / steps,
            "aug_seconds": aug_s,
            "control_seconds": control_s,
            "synthetic_seconds": synthetic_s,
            "synthetic_share": self.fake / bs,
            **logged,
        }
        if self.controller is not None:
            t1 = time.perf_counter()
            metrics.update(self.controller.after_epoch(epoch + 1, metrics))
            metrics["control_seconds"] += time.perf_counter() - t1
        self.history.append(metrics)
        self.epoch += 1
        return metrics

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume after ``self.epoch`` epochs (not an adaptive controller's state)."""
        if self.controller is not None:
            raise AutoaugError(f"a run with the adaptive schedule {self.policy.schedule.kind!r} cannot be checkpointed")
        return {"epoch": self.epoch, "model": self.model.state_dict(), "opt": self.opt.state_dict(),
                "sched": self.sched.state_dict() if self.sched else None, "shuffle": self.shuffle.get_state(),
                "augment": self.augment_rng.get_state(), "history": self.history,
                "synthetic": self.synthetic_rng.get_state() if self.synthetic is not None else None,
                "torch_rng": torch.get_rng_state(),  # dropout draws from the global generator
                "cuda_rng": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["opt"])
        if self.sched and state["sched"]:
            self.sched.load_state_dict(state["sched"])
        self.shuffle.set_state(state["shuffle"])
        self.augment_rng.set_state(state["augment"])
        if self.synthetic is not None and state.get("synthetic") is not None:
            self.synthetic_rng.set_state(state["synthetic"])
        torch.set_rng_state(state["torch_rng"].cpu())
        if self.device.type == "cuda" and state["cuda_rng"] is not None:
            torch.cuda.set_rng_state(state["cuda_rng"].cpu(), self.device)
        self.epoch, self.history = state["epoch"], list(state["history"])


def train(config: TrainConfig, data: DatasetSplits, policy: Policy | str = "none",
          report: Report | None = None) -> TrainResult:
    """Train ``config.model`` on ``data.train`` with ``policy``; validate on ``data.val`` every epoch.

    ``report(metrics)`` gets, per epoch: ``epoch, train_loss, train_acc, val_loss, val_acc, lr, magnitude``
    (the magnitude factor in force at the epoch's start), ``magnitude/OP`` (each op's magnitude),
    ``epoch_seconds, images_per_second, aug_ms_per_batch, aug_seconds, control_seconds`` (time spent in an
    adaptive controller), and the controller's own values. Raises :class:`TrainingDiverged` on a NaN loss.
    The test split is never touched here.
    """
    trainer = Trainer(config, data, policy)
    result = TrainResult(model=trainer.model)
    start = time.perf_counter()
    while trainer.epoch < config.epochs:
        metrics = trainer.run_epoch()
        if report is not None:
            report(metrics)
    result.history, result.seconds = trainer.history, time.perf_counter() - start
    return result
