"""The training batches of one run, made on its device: shuffled real images, the synthetic share, augmented.

:class:`Batches` owns what is random about the data a run sees (batch order, augmentation, generated images),
so a checkpoint of its generators replays the same batches. :class:`Stopwatch` times parts of a step without a
device sync per batch.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Iterator, Mapping
from typing import Any

import torch

from autoaug.augment.adaptive import Controller
from autoaug.augment.augmenter import apply, sample
from autoaug.augment.mix import mix_batch
from autoaug.augment.policy import Policy
from autoaug.data.datasets import DatasetSplits
from autoaug.data.synthetic import Generator, generator_for
from autoaug.seeding import derive_seed, make_generator


def to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 images to float in ``[0, 1]``."""
    return x.float().div_(255)


class Stopwatch:
    """Accumulates the time spent inside ``with`` blocks; on a GPU with CUDA events, read once per epoch."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.seconds, self.events = 0.0, []

    def __enter__(self) -> Stopwatch:
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
        """Seconds since the last call."""
        if self.cuda:
            torch.cuda.synchronize()
            self.seconds += sum(a.elapsed_time(b) for a, b in self.events) / 1000
            self.events.clear()
        total, self.seconds = self.seconds, 0.0
        return total


def synthetic_generator(policy: Policy, data: DatasetSplits, seed: int, device: torch.device,
                        given: Mapping[str, Generator]) -> Generator | None:
    """The generator a policy's ``synthetic`` setting asks for: given, else the cached one (trained now if there
    is none) for this training split and seed; None without a synthetic share."""
    syn = policy.synthetic
    if syn is None or syn.ratio == 0:
        return None
    if syn.generator in given:
        return given[syn.generator].to(device)
    return generator_for(syn.generator, data, seed=seed, epochs=syn.epochs, device=device, echo=lambda line: None)[0]


CHUNK_IMAGES, CHUNK_VALUES = 512, 2**21  # the most images (and float values) augmented in one call


def chunk_batches(batch_size: int, image_shape: tuple[int, ...]) -> int:
    """How many batches of ``batch_size`` images of ``image_shape`` ``[C, H, W]`` an epoch augments in one call: up
    to :data:`CHUNK_IMAGES` images and :data:`CHUNK_VALUES` values, at least one batch. Each call pays a fixed
    cost for every op it runs (the sampling and dispatch of some hundred small kernels, slower again right after a
    training step has filled the caches), so small images are augmented several batches at a time
    (``benchmarks/bench_aug_share.py``)."""
    images = min(CHUNK_IMAGES, CHUNK_VALUES // max(1, math.prod(image_shape)))
    return max(1, images // max(1, batch_size))


class Batches:
    """Batches of ``batch_size`` from uint8 images ``x [N, C, H, W]`` and labels ``y [N]`` (moved to ``device``
    once): each epoch a fresh order of the real images, ``fake`` generated images per batch (uniform labels)
    when ``synthetic`` is given, and the policy's augmentation (the ``controller``'s, when there is one). The
    last partial batch is dropped (BatchNorm needs more than one sample).

    An epoch augments ``chunk`` batches in one call (default :func:`chunk_batches`), with per-image parameters as
    ever, at the training progress of the first of them; a controller, whose setting may change after any step,
    and a synthetic share take one batch at a time. Batch mixing is per batch."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, *, batch_size: int, num_classes: int, policy: Policy,
                 seed: int, device: torch.device, controller: Controller | None = None,
                 synthetic: Generator | None = None, chunk: int | None = None) -> None:
        self.x, self.y, self.device = x.to(device), y.to(device), device
        self.policy, self.controller, self.synthetic, self.num_classes = policy, controller, synthetic, num_classes
        self.size = min(batch_size, len(y))
        self.fake = 0 if synthetic is None else min(round(policy.synthetic.ratio * self.size), self.size - 1)  # type: ignore[union-attr]
        self.steps = len(y) // (self.size - self.fake)  # every epoch sees each real image at most once
        self.shuffle = make_generator(derive_seed(seed, "shuffle"))
        self.augment_rng = make_generator(derive_seed(seed, "augment"), device)
        self.augment_host = random.Random(derive_seed(seed, "augment", "host"))
        self.synthetic_rng = make_generator(derive_seed(seed, "synthetic"), device)
        self.mix_rng = make_generator(derive_seed(seed, "mix"), device)
        self.mix_host = random.Random(derive_seed(seed, "mix", "host"))
        self.aug_timer, self.synthetic_timer = Stopwatch(device), Stopwatch(device)
        one_by_one = controller is not None or synthetic is not None  # a controller may change after any step
        self.chunk = 1 if one_by_one else chunk or chunk_batches(self.size, tuple(x.shape[1:]))

    def epoch(self, epoch: int, epochs: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The batches of ``epoch`` (0-based) of ``epochs``: float images ``[B, C, H, W]`` and labels ``[B]`` (soft
        targets ``[B, K]`` where the policy mixes batches)."""
        real = self.size - self.fake
        perm = torch.randperm(len(self.y), generator=self.shuffle).to(self.device)
        if self.synthetic is not None:  # its share is drawn and placed per batch
            for i in range(self.steps):
                yield self.batch(perm[i * real : (i + 1) * real], (epoch + i / self.steps) / epochs)
            return
        for first in range(0, self.steps, self.chunk):
            n = min(self.chunk, self.steps - first)
            idx = perm[first * real : (first + n) * real]
            xs, ys = to_float(self.x[idx]), self.y[idx]
            with self.aug_timer:
                xs = self._augment(xs, (epoch + first / self.steps) / epochs)
            for xb, yb in zip(xs.split(real), ys.split(real), strict=True):
                with self.aug_timer:
                    batch = self._mix(xb, yb)
                yield batch

    def batch(self, idx: torch.Tensor, progress: float) -> tuple[torch.Tensor, torch.Tensor]:
        """One batch at training ``progress``: the real images ``idx`` (augmented) and the synthetic share (drawn
        from the generator's stream, augmented where the policy says so), images ``[B, C, H, W]``, labels ``[B]``;
        where the policy mixes batches, mixed images and soft targets ``[B, K]``."""
        xb, yb = to_float(self.x[idx]), self.y[idx]
        if self.synthetic is None:
            with self.aug_timer:
                return self._mix(self._augment(xb, progress), yb)
        with self.synthetic_timer:
            labels = torch.randint(self.num_classes, (self.fake,), generator=self.synthetic_rng, device=self.device)
            fake = self.synthetic.sample(labels, self.synthetic_rng)
        with self.aug_timer:
            if self.policy.synthetic.augment:  # type: ignore[union-attr]
                return self._mix(self._augment(torch.cat([xb, fake]), progress), torch.cat([yb, labels]))
            return self._mix(torch.cat([self._augment(xb, progress), fake]), torch.cat([yb, labels]))

    def _mix(self, xb: torch.Tensor, yb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.policy.mixes:
            return xb, yb
        return mix_batch(xb, yb, self.num_classes, self.policy.mix, self.mix_host, self.mix_rng)  # type: ignore[arg-type]

    def _augment(self, xb: torch.Tensor, progress: float) -> torch.Tensor:
        policy, factor = self.controller.current(progress) if self.controller else (self.policy, None)
        if not policy.at(progress).augments:
            return xb
        return apply(xb, sample(policy, xb.shape, progress, self.augment_rng, self.device, factor, self.augment_host))

    def magnitudes(self, progress: float) -> dict[str, float]:
        """The magnitude factor and each op's magnitude in force at ``progress``, for the logs."""
        policy, factor = self.controller.current(progress) if self.controller else (self.policy, None)
        factor = policy.schedule.factor(progress) if factor is None else factor
        return {"magnitude": factor, **{f"magnitude/{k}": v for k, v in policy.magnitudes(progress, factor).items()}}

    def state_dict(self) -> dict[str, Any]:
        return {"shuffle": self.shuffle.get_state(), "augment": self.augment_rng.get_state(),
                "augment_host": self.augment_host.getstate(), "synthetic": self.synthetic_rng.get_state(),
                "mix": self.mix_rng.get_state(), "mix_host": self.mix_host.getstate()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Generator states may come back on any device (``torch.load(map_location=...)``): they are set from
        CPU copies, as ``Generator.set_state`` wants."""
        self.shuffle.set_state(state["shuffle"].cpu())
        self.augment_rng.set_state(state["augment"].cpu())
        self.augment_host.setstate(state["augment_host"])
        self.synthetic_rng.set_state(state["synthetic"].cpu())
        if "mix" in state:  # checkpoints from before mixing have none
            self.mix_rng.set_state(state["mix"].cpu())
            self.mix_host.setstate(state["mix_host"])
