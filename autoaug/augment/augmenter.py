"""Sample per-image augmentation parameters for a policy and apply them to a batch on its device.

Two lines in any PyTorch loop::

    aug = Augmenter(Policy.load("best.json"))
    xb = aug(xb, progress=epoch / epochs)   # xb: uint8 [B, C, H, W], or float in [0, 1]
"""

from __future__ import annotations

import functools
import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch

from autoaug.augment.ops import OPS, warp_affine
from autoaug.augment.policy import OpConfig, Policy, Step
from autoaug.augment.presets import resolve_policy
from autoaug.seeding import canonical_device, derive_seed, make_generator


@dataclass(frozen=True)
class OpParams:
    """One op's draw for a batch: the images it applies to and their magnitudes and extra randomness."""

    index: torch.Tensor  # int64 [n]: positions in the batch (n is fixed on the host: no device sync)
    magnitude: torch.Tensor  # [n] signed normalized magnitudes
    rand: torch.Tensor  # [n, k] uniforms, or [n, C, H, W] normal noise


@dataclass(frozen=True)
class Params:
    """Everything random about one augmented batch; ``apply(x, params)`` is deterministic."""

    ops: tuple[tuple[str, OpParams], ...]


def _stochastic_round(x: float, host: random.Random) -> int:
    """``floor(x)`` or ``ceil(x)``, with expectation ``x``."""
    low = math.floor(x)
    return low + (host.random() < x - low)


@functools.lru_cache(maxsize=64)
def _slot_ranks(b: int, k: int, n_ops: int, device: str) -> tuple[torch.Tensor, ...]:
    """For ``n_ops`` of ``k`` ops per image: the image ranks each of the ``k`` slots takes, on ``device``.

    The image at rank ``r`` takes slots ``r, r + 1, ..., r + n_ops - 1`` (mod ``k``), so its slots are distinct
    and every slot serves about ``b * n_ops / k`` images. Made once per shape: no host-to-device copy per batch.
    """
    return tuple(torch.tensor([r for r in range(b) if (q - r) % k < n_ops], dtype=torch.long, device=device)
                 for q in range(k))


def sample(policy: Policy, shape: torch.Size | tuple[int, ...], progress: float, generator: torch.Generator,
           device: torch.device | str | None = None, factor: float | None = None,
           host: random.Random | None = None) -> Params:
    """Draw per-image parameters for a batch of ``shape`` ``[B, C, H, W]`` at training ``progress``.

    ``factor`` replaces the policy schedule's magnitude factor (an adaptive controller's level); ops with a
    schedule of their own keep it. Per-image values come from ``generator`` on the device; how many images each
    op takes is decided on the host with ``host`` (default: a fresh ``random.Random(0)``; a run passes its own),
    so every shape is known without reading the device back:

    - the policy's ``base`` ops, and its ``ops`` with ``n_ops`` = None: op ``j`` takes a random subset of
      ``B * p_j`` images (rounded stochastically);
    - ``n_ops`` = n: the ops are put in a random order (host), the images in a random order (device), and the image
      at rank ``r`` takes the ops at places ``r .. r + n - 1`` (mod k) of that order: every image gets ``n``
      distinct ops, as a uniformly drawn ordered n-tuple, and each op about ``B n / k`` images; then each op keeps
      a random ``p_j`` share of them.

    Base ops come first in the result, then the others in registry order: the order they apply in.
    """
    device = torch.device(device) if device is not None else generator.device
    host = host if host is not None else random.Random(0)
    policy = policy.at(progress)
    if shape[0] == 0:
        return Params(ops=())
    draw = functools.partial(_draw, shape=tuple(shape), generator=generator, device=device, host=host)
    return Params(ops=draw(policy.base, None, policy.base_magnitudes(progress))
                  + draw(policy.ops, policy.n_ops, policy.magnitudes(progress, factor))
                  + _draw_subpolicies(policy.subpolicies, shape=tuple(shape), generator=generator, device=device,
                                      host=host))


def _draw(ops: Mapping[str, OpConfig], n_ops: int | None, magnitudes: Mapping[str, float], *,
          shape: tuple[int, ...], generator: torch.Generator, device: torch.device,
          host: random.Random) -> tuple[tuple[str, OpParams], ...]:
    """The draws of one layer of ops (see :func:`sample`)."""
    names = list(ops)
    b, k = shape[0], len(names)
    if k == 0:
        return ()
    if n_ops is None:
        subsets = {name: torch.rand(b, generator=generator, device=device).argsort() for name in names}
    else:
        order = host.sample(range(k), k)  # the op at each place
        ranked = torch.rand(b, generator=generator, device=device).argsort()  # the image at each rank
        ranks = _slot_ranks(b, k, n_ops, str(device))
        subsets = {names[order[q]]: ranked[ranks[q]] for q in range(k)}
    out = []
    for name in names:  # registry order: the order ops apply in
        cfg, spec = ops[name], OPS[name]
        pool = subsets[name]
        n = _stochastic_round(len(pool) * cfg.probability, host)
        if n == 0:
            continue
        idx = pool[:n]
        base = magnitudes.get(name, 0.0)
        u = torch.rand(2, n, generator=generator, device=device)  # magnitude, sign
        mag = u[0] * base if cfg.sampling == "uniform" else torch.full((n,), base, device=device)
        if spec.signed:
            mag = torch.where(u[1] < 0.5, -mag, mag)
        if spec.dense_noise:
            rand = torch.randn((n, *shape[1:]), generator=generator, device=device)
        else:
            rand = torch.rand(n, spec.n_uniform, generator=generator, device=device)
        out.append((name, OpParams(idx, mag, rand)))
    return tuple(out)


def _draw_subpolicies(subpolicies: tuple[tuple[Step, ...], ...], *, shape: tuple[int, ...],
                      generator: torch.Generator, device: torch.device,
                      host: random.Random) -> tuple[tuple[str, OpParams], ...]:
    """Each image draws one of ``subpolicies`` (the images in a random order, the sub-policies in a random order on
    the host: the image at rank ``r`` takes the sub-policy at place ``r mod k``), then each step applies to a random
    share ``p`` of that sub-policy's images at its fixed magnitude. The draws of one step position are merged by op
    (one kernel call per op and position); all first steps come before all second steps."""
    b, k = shape[0], len(subpolicies)
    if k == 0:
        return ()
    order = host.sample(range(k), k)
    ranked = torch.rand(b, generator=generator, device=device).argsort()
    ranks = _slot_ranks(b, k, 1, str(device))
    images = {order[q]: ranked[ranks[q]] for q in range(k)}  # sub-policy -> its images
    out = []
    for position in range(max(len(sub) for sub in subpolicies)):
        merged: dict[str, list[tuple[torch.Tensor, float]]] = {}
        for i, sub in enumerate(subpolicies):
            if position < len(sub):
                step, pool = sub[position], images[i]
                n = _stochastic_round(len(pool) * step.probability, host)
                if n:
                    merged.setdefault(step.op, []).append((pool[:n], step.magnitude))
        for name in OPS:  # registry order within a position (the images of one position are disjoint)
            if name not in merged:
                continue
            spec = OPS[name]
            idx = torch.cat([pool for pool, _ in merged[name]])
            mag = torch.cat([torch.full((len(pool),), m, device=device) for pool, m in merged[name]])
            if spec.signed:
                mag = torch.where(torch.rand(len(idx), generator=generator, device=device) < 0.5, -mag, mag)
            rand = (torch.randn((len(idx), *shape[1:]), generator=generator, device=device) if spec.dense_noise
                    else torch.rand(len(idx), spec.n_uniform, generator=generator, device=device))
            out.append((name, OpParams(idx, mag, rand)))
    return tuple(out)


def apply(imgs: torch.Tensor, params: Params) -> torch.Tensor:
    """Apply sampled ``params`` to ``imgs [B, C, H, W]`` (uint8, or float in [0, 1]); same dtype back."""
    is_uint8 = imgs.dtype == torch.uint8
    x = imgs.float().div_(255) if is_uint8 else imgs.clone()
    geometric: list[tuple[str, OpParams]] = []
    for name, p in params.ops:
        if OPS[name].affine is not None:
            geometric.append((name, p))
            continue
        _warp_fused(x, geometric)
        geometric = []
        _apply_subset(x, p.index, lambda sub, p=p, name=name: OPS[name](sub, p.magnitude, p.rand.to(x.dtype)))
    _warp_fused(x, geometric)
    return x.mul_(255).round_().to(torch.uint8) if is_uint8 else x


def _warp_fused(x: torch.Tensor, ops: list[tuple[str, OpParams]]) -> None:
    """Compose consecutive geometric ops into one affine warp per image (one resampling, in place).

    One op warps its own images; several compose their matrices over the batch and warp it whole, keeping the
    images none of them touched (their number is not known on the host)."""
    if not ops:
        return
    b, _, h, w = x.shape
    if len(ops) == 1:
        (name, p), spec = ops[0], OPS[ops[0][0]]
        _apply_subset(x, p.index, lambda sub: warp_affine(sub, *spec.affine(spec.value(p.magnitude.to(x.dtype)), h, w)))  # type: ignore[misc]
        return
    # each op's value for the whole batch, 0 (the identity: no turn, shear, shift or zoom) where it does not apply,
    # so the matrices compose over the batch without gathering and scattering them
    a, t = None, None
    touched = torch.zeros(b, dtype=torch.bool, device=x.device)
    for name, p in ops:
        spec = OPS[name]
        value = x.new_zeros(b).index_copy_(0, p.index, spec.value(p.magnitude.to(x.dtype)))
        a_op, t_op = spec.affine(value, h, w)  # type: ignore[misc]
        a, t = (a_op, t_op) if a is None else (a_op @ a, (a_op @ t.unsqueeze(-1)).squeeze(-1) + t_op)
        touched.index_fill_(0, p.index, True)
    x.copy_(torch.where(touched.view(b, 1, 1, 1), warp_affine(x, a, t), x))


def _apply_subset(x: torch.Tensor, idx: torch.Tensor, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """``x[idx] = fn(x[idx])`` in place, without the gather and scatter when ``idx`` is the whole batch."""
    if idx.numel() == x.shape[0]:
        x.copy_(fn(x))
    else:
        x.index_copy_(0, idx, fn(x.index_select(0, idx)))


class Augmenter:
    """Applies a policy to batches with its own seeded generators: one on the batch's device for the per-image
    values, one on the host for how many images each op takes.

    ``policy``: a :class:`Policy`, a preset name or a JSON path. Replaying with the same ``seed`` gives
    the same batches.
    """

    def __init__(self, policy: Policy | str, seed: int = 0) -> None:
        self.policy = resolve_policy(policy)
        self.seed = int(seed)
        self.host = random.Random(derive_seed(self.seed, "host"))
        self._generator: torch.Generator | None = None

    def generator(self, device: torch.device | str) -> torch.Generator:
        """The device generator, made on first use and again only when the device changes."""
        device = canonical_device(device)
        if self._generator is None or self._generator.device != device:
            self._generator = make_generator(self.seed, device)
        return self._generator

    def sample(self, shape: torch.Size | tuple[int, ...], progress: float = 0.0,
               device: torch.device | str = "cpu", factor: float | None = None) -> Params:
        generator = self.generator(device)
        return sample(self.policy, shape, progress, generator, generator.device, factor, self.host)

    def __call__(self, imgs: torch.Tensor, progress: float = 0.0, factor: float | None = None) -> torch.Tensor:
        if not self.policy.at(progress).augments:
            return imgs
        return apply(imgs, self.sample(imgs.shape, progress, imgs.device, factor))

    def __repr__(self) -> str:
        return f"Augmenter(policy={self.policy.name!r}, ops={list(self.policy.ops)}, seed={self.seed})"
