"""Plain-PyTorch training with batched on-device augmentation. Knows neither Ray nor MLflow.

``train(config, data, policy, report)`` calls ``report(metrics)`` once per epoch. The data stays on the
device as uint8 tensors; each batch is indexed, augmented and normalized there.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from autoaug.augment import Augmenter
from autoaug.datasets import DatasetSplits
from autoaug.errors import AutoaugError, choice_error
from autoaug.models import Normalize, build_model, check_model
from autoaug.policy import Policy, resolve_policy
from autoaug.seeding import derive_seed, make_generator

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


def train(config: TrainConfig, data: DatasetSplits, policy: Policy | str = "none",
          report: Report | None = None) -> TrainResult:
    """Train ``config.model`` on ``data.train`` with ``policy``; validate on ``data.val`` every epoch.

    ``report(metrics)`` gets, per epoch: ``epoch, train_loss, train_acc, val_loss, val_acc, lr, magnitude,
    epoch_seconds, images_per_second, aug_ms_per_batch, aug_seconds``. Raises :class:`TrainingDiverged` on a NaN loss.
    The test split is never touched here.
    """
    policy = resolve_policy(policy)
    device = resolve_device(config.device)
    c, h, w = data.image_shape
    torch.manual_seed(derive_seed(config.seed, "init"))
    net = build_model(config.model, c, data.num_classes, min(h, w))
    train_x, train_y = data.train_x.to(device), data.train_y.to(device)
    model = nn.Sequential(Normalize(*channel_stats(data.train_x)), net).to(device)

    n = len(train_y)
    bs = min(config.batch_size, n)
    steps = n // bs  # drop the last partial batch (BatchNorm needs > 1 sample)
    total_steps = steps * config.epochs
    opt = _optimizer(config, model.parameters())
    schedule = (lambda s: 0.5 * (1 + math.cos(math.pi * s / total_steps))) if config.lr_schedule == "cosine" else None
    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule) if schedule else None
    augment = Augmenter(policy, seed=derive_seed(config.seed, "augment"))
    shuffle = make_generator(derive_seed(config.seed, "shuffle"))
    timer = _AugTimer(device)

    result = TrainResult(model=model)
    start = time.perf_counter()
    for epoch in range(config.epochs):
        t0 = time.perf_counter()
        model.train()
        lr = opt.param_groups[0]["lr"]
        perm = torch.randperm(n, generator=shuffle).to(device)
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        for i in range(steps):
            idx = perm[i * bs : (i + 1) * bs]
            xb, yb = _to_float(train_x[idx]), train_y[idx]
            with timer:
                xb = augment(xb, progress=(epoch + i / steps) / config.epochs)
            logits = model(xb)
            loss = F.cross_entropy(logits, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if sched:
                sched.step()
            loss_sum += loss.detach()
            correct += (logits.argmax(1) == yb).sum()
        train_loss = loss_sum.item() / steps
        if not math.isfinite(train_loss):
            raise TrainingDiverged(f"training loss became {train_loss} in epoch {epoch + 1}")
        aug_s = timer.total()
        epoch_s = time.perf_counter() - t0
        val = evaluate(model, data.val_x, data.val_y, config.eval_batch_size)
        metrics = {
            "epoch": epoch + 1,
            "train_loss": train_loss,
            "train_acc": correct.item() / (steps * bs),
            "val_loss": val["loss"],
            "val_acc": val["acc"],
            "lr": lr,
            "magnitude": policy.schedule.factor(epoch / config.epochs),
            "epoch_seconds": epoch_s,
            "images_per_second": steps * bs / epoch_s,
            "aug_ms_per_batch": 1000 * aug_s / steps,
            "aug_seconds": aug_s,
        }
        result.history.append(metrics)
        if report is not None:
            report(metrics)
    result.seconds = time.perf_counter() - start
    return result
