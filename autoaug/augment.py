"""Sample per-image augmentation parameters for a policy and apply them to a batch on its device.

Two lines in any PyTorch loop::

    aug = Augmenter(Policy.load("best.json"))
    xb = aug(xb, progress=epoch / epochs)   # xb: uint8 [B, C, H, W], or float in [0, 1]
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from autoaug.ops import OPS, warp_affine
from autoaug.policy import Policy, resolve_policy
from autoaug.seeding import make_generator


@dataclass(frozen=True)
class OpParams:
    """One op's draw for a batch: the images it applies to and their magnitudes and extra randomness."""

    index: torch.Tensor  # int64 [n]: positions in the batch
    magnitude: torch.Tensor  # [n] signed normalized magnitudes
    rand: torch.Tensor  # [n, k] uniforms, or [n, C, H, W] normal noise


@dataclass(frozen=True)
class Params:
    """Everything random about one augmented batch; ``apply(x, params)`` is deterministic."""

    ops: tuple[tuple[str, OpParams], ...]


def sample(policy: Policy, shape: torch.Size | tuple[int, ...], progress: float, generator: torch.Generator,
           device: torch.device | str | None = None, factor: float | None = None) -> Params:
    """Draw per-image parameters for a batch of ``shape`` ``[B, C, H, W]`` at training ``progress``.

    ``factor`` replaces the policy schedule's magnitude factor (an adaptive controller's level); ops with a
    schedule of their own keep it."""
    device = torch.device(device) if device is not None else generator.device
    policy = policy.at(progress)
    names = list(policy.ops)
    b, k = shape[0], len(names)
    if k == 0 or b == 0:
        return Params(ops=())
    u = torch.rand(4, b, k, generator=generator, device=device)  # choice, probability, magnitude, sign
    if policy.n_ops is None:
        chosen = torch.ones(b, k, dtype=torch.bool, device=device)
    else:
        chosen = u[0].argsort(dim=1).argsort(dim=1) < policy.n_ops  # k distinct ops per image
    cfgs = [policy.ops[n] for n in names]
    prob = torch.tensor([c.probability for c in cfgs], device=device)
    applied = chosen & (u[1] < prob)
    magnitudes = policy.magnitudes(progress, factor)
    out = []
    for j, (name, cfg) in enumerate(zip(names, cfgs, strict=True)):
        idx = applied[:, j].nonzero().squeeze(1)
        if idx.numel() == 0:
            continue
        spec = OPS[name]
        base = magnitudes.get(name, 0.0)
        mag = u[2, idx, j] * base if cfg.sampling == "uniform" else torch.full_like(u[2, idx, j], base)
        if spec.signed:
            mag = torch.where(u[3, idx, j] < 0.5, -mag, mag)
        if spec.dense_noise:
            rand = torch.randn((idx.numel(), *shape[1:]), generator=generator, device=device)
        else:
            rand = torch.rand(idx.numel(), spec.n_uniform, generator=generator, device=device)
        out.append((name, OpParams(idx, mag, rand)))
    return Params(ops=tuple(out))


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
    """Compose consecutive geometric ops into one affine warp per image (one resampling, in place)."""
    if not ops:
        return
    b, _, h, w = x.shape
    a = torch.eye(2, device=x.device, dtype=x.dtype).repeat(b, 1, 1)
    t = x.new_zeros(b, 2)
    touched = torch.zeros(b, dtype=torch.bool, device=x.device)
    for name, p in ops:
        spec = OPS[name]
        a_op, t_op = spec.affine(spec.value(p.magnitude.to(x.dtype)), h, w)  # type: ignore[misc]
        a[p.index] = a_op @ a[p.index]
        t[p.index] = (a_op @ t[p.index].unsqueeze(-1)).squeeze(-1) + t_op
        touched[p.index] = True
    idx = touched.nonzero().squeeze(1)
    _apply_subset(x, idx, lambda sub: warp_affine(sub, a[idx], t[idx]))


def _apply_subset(x: torch.Tensor, idx: torch.Tensor, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """``x[idx] = fn(x[idx])`` in place, without the gather and scatter when ``idx`` is the whole batch."""
    if idx.numel() == x.shape[0]:
        x.copy_(fn(x))
    else:
        x.index_copy_(0, idx, fn(x.index_select(0, idx)))


class Augmenter:
    """Applies a policy to batches with its own seeded generator, created on the batch's device.

    ``policy``: a :class:`Policy`, a preset name or a JSON path. Replaying with the same ``seed`` gives
    the same batches.
    """

    def __init__(self, policy: Policy | str, seed: int = 0) -> None:
        self.policy = resolve_policy(policy)
        self.seed = int(seed)
        self._generator: torch.Generator | None = None

    def generator(self, device: torch.device) -> torch.Generator:
        if self._generator is None or self._generator.device != device:
            self._generator = make_generator(self.seed, device)
        return self._generator

    def sample(self, shape: torch.Size | tuple[int, ...], progress: float = 0.0,
               device: torch.device | str = "cpu", factor: float | None = None) -> Params:
        device = torch.device(device)
        return sample(self.policy, shape, progress, self.generator(device), device, factor)

    def __call__(self, imgs: torch.Tensor, progress: float = 0.0, factor: float | None = None) -> torch.Tensor:
        if not self.policy.at(progress).ops:
            return imgs
        return apply(imgs, self.sample(imgs.shape, progress, imgs.device, factor))

    def __repr__(self) -> str:
        return f"Augmenter(policy={self.policy.name!r}, ops={list(self.policy.ops)}, seed={self.seed})"
