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
import torch.nn.functional as F

from autoaug.augment.geometry import crop_bound, crop_shifts, shift_flip, warp_affine
from autoaug.augment.ops import OPS
from autoaug.augment.policy import OpConfig, Policy, Step
from autoaug.augment.presets import resolve_policy
from autoaug.seeding import canonical_device, derive_seed, make_generator


@dataclass(frozen=True)
class OpParams:
    """One op's draw for a batch: the images it applies to and their magnitudes and extra randomness."""

    index: torch.Tensor  # int64 [n]: positions in the batch (n is fixed on the host: no device sync)
    magnitude: torch.Tensor  # [n] signed normalized magnitudes
    rand: torch.Tensor  # [n, k] uniforms, or [n, C, H, W] normal noise
    group: int | None = None  # ops of one batch with the same group take disjoint images (host-known sizes)


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
                  + draw(policy.ops, policy.n_ops, policy.magnitudes(progress, factor), group=0)
                  + _draw_subpolicies(policy.subpolicies, shape=tuple(shape), generator=generator, device=device,
                                      host=host))


def _draw(ops: Mapping[str, OpConfig], n_ops: int | None, magnitudes: Mapping[str, float], *,
          shape: tuple[int, ...], generator: torch.Generator, device: torch.device,
          host: random.Random, group: int | None = None) -> tuple[tuple[str, OpParams], ...]:
    """The draws of one layer of ops (see :func:`sample`); with one op per image, its ops are marked ``group``
    (their images are disjoint)."""
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
        if cfg.sampling != "uniform":
            mag = torch.where(u[1] < 0.5, -base, base) if spec.signed else torch.full((n,), base, device=device)
        else:
            mag = (u[0] * base).copysign_(u[1] - 0.5) if spec.signed else u[0] * base  # negative where u[1] < 0.5
        if spec.dense_noise:
            rand = torch.randn((n, *shape[1:]), generator=generator, device=device)
        elif spec.n_uniform:
            rand = torch.rand(n, spec.n_uniform, generator=generator, device=device)
        else:  # nothing to draw
            rand = torch.empty(n, 0, device=device)
        out.append((name, OpParams(idx, mag, rand, group if n_ops == 1 else None)))
    return tuple(out)


def _draw_subpolicies(subpolicies: tuple[tuple[Step, ...], ...], *, shape: tuple[int, ...],
                      generator: torch.Generator, device: torch.device,
                      host: random.Random) -> tuple[tuple[str, OpParams], ...]:
    """Each image draws one of ``subpolicies`` (the images in a random order, the sub-policies in a random order on
    the host: the image at rank ``r`` takes the sub-policy at place ``r mod k``), then each step applies to a random
    share ``p`` of that sub-policy's images at its fixed magnitude. The draws of one step position are merged by op
    (one kernel call per op and position; their images are disjoint: group ``1 + position``); all first steps come
    before all second steps."""
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
                    else torch.rand(len(idx), spec.n_uniform, generator=generator, device=device) if spec.n_uniform
                    else torch.empty(len(idx), 0, device=device))
            out.append((name, OpParams(idx, mag, rand, 1 + position)))
    return tuple(out)


MIRRORS = {"hflip": 0, "vflip": 1}  # the exact mirrors, by the coordinate they negate (x, y)


def apply(imgs: torch.Tensor, params: Params) -> torch.Tensor:
    """Apply sampled ``params`` to ``imgs [B, C, H, W]`` (uint8, or float in [0, 1]); same dtype back.

    Consecutive geometric ops (affine ops, mirrors, and a crop after nothing but mirrors) are applied together
    (:func:`_apply_run`); identity is skipped."""
    is_uint8 = imgs.dtype == torch.uint8
    x = imgs.float().div_(255) if is_uint8 else imgs.clone()
    run: list[tuple[str, OpParams]] = []
    for name, p in params.ops:
        if name == "identity":
            continue
        if OPS[name].affine is not None or name in MIRRORS:
            run.append((name, p))
            continue
        if name == "crop":  # joins a run of mirrors only: its cut is then a mask on the images it starts from
            if not all(n in MIRRORS for n, _ in run):
                _apply_run(x, run)
                run = []
            run.append((name, p))
            continue
        _apply_run(x, run)
        run = []
        _apply_op(x, name, p)
    _apply_run(x, run)
    return x.mul_(255).round_().to(torch.uint8) if is_uint8 else x


def _apply_run(x: torch.Tensor, run: list[tuple[str, OpParams]]) -> None:
    """Apply a run of consecutive geometric ops in place: with an affine op among them, one warp per image
    (:func:`_warp_fused`); else with a crop, the crop and the mirrors as one gather (exactly as one by one)."""
    if not run:
        return
    if any(OPS[name].affine is not None for name, _ in run):
        _warp_fused(x, run)
        return
    if all(name in MIRRORS for name, _ in run):
        for name, p in run:
            _apply_op(x, name, p)
        return
    b, _, h, w = x.shape
    signs = [x.new_ones(b), x.new_ones(b)]  # -1 where an image is mirrored (an odd number of times): x, y
    for name, p in run:
        if name == "crop":
            # a mirror before the shift turns it round: shift(d) after mirror = mirror after shift(-d)
            dx, dy = _crop_shifts(x, p)
            dx, dy = dx * signs[0], dy * signs[1]
        else:
            signs[MIRRORS[name]] *= x.new_ones(b).index_fill_(0, p.index, -1.0)
    x.copy_(shift_flip(x, dx, dy, signs[0] < 0, signs[1] < 0, bound=(crop_bound(h), crop_bound(w))))


def _crop_shifts(x: torch.Tensor, p: OpParams) -> tuple[torch.Tensor, torch.Tensor]:
    """A crop's shifts ``dx, dy`` for every image of the batch ``x`` (0 where it does not apply; over the whole
    batch, image ``i`` takes draw ``i``, as :func:`_apply_subset` gives it)."""
    b, _, h, w = x.shape
    spec = OPS["crop"]
    dx, dy = crop_shifts(spec.value(p.magnitude.to(x.dtype)), p.rand.to(x.dtype), h, w)
    if p.index.numel() == b:
        return dx, dy
    d = x.new_zeros(b, 2).index_copy_(0, p.index, torch.stack([dx, dy], -1))
    return d[:, 0], d[:, 1]


def _warp_fused(x: torch.Tensor, ops: list[tuple[str, OpParams]]) -> None:
    """Compose consecutive geometric ops into one affine warp per image (one resampling, in place).

    One op warps its own images; several compose their maps over the batch and warp it whole, keeping the images
    none of them touched (their number is not known on the host). Mirrors join as reflections about the centre,
    a crop (after mirrors only) as a shift, its cut as zeros on the images before the warp: where no other op
    moves an image, its warp lands on pixel centres and equals the crop and the mirrors (up to float rounding)."""
    if not ops:
        return
    b, _, h, w = x.shape
    if len(ops) == 1:
        (name, p), spec = ops[0], OPS[ops[0][0]]
        _apply_subset(x, p.index, lambda sub: warp_affine(sub, *spec.affine(spec.value(p.magnitude.to(x.dtype)), h, w)))  # type: ignore[misc]
        return
    if ops[0][1].group is not None and all(p.group == ops[0][1].group and OPS[n].affine for n, p in ops):
        # disjoint images (one op each): their maps side by side, one warp of just those images
        maps = [OPS[n].affine(OPS[n].value(p.magnitude.to(x.dtype)), h, w) for n, p in ops]  # type: ignore[misc]
        a, t = torch.cat([a for a, _ in maps]), torch.cat([t for _, t in maps])
        _apply_subset(x, torch.cat([p.index for _, p in ops]), lambda sub: warp_affine(sub, a, t))
        return
    # each op's value for the whole batch, the identity (no turn, shear, shift or zoom) where it does not apply, so
    # the maps [a | t] (pixel -> pixel, about the centre) compose over the batch without gathering and scattering
    m = torch.eye(2, 3, device=x.device, dtype=x.dtype).repeat(b, 1, 1)  # [B, 2, 3]: moves nothing
    touched = x.new_zeros(b)
    everyone = False
    before_crop: list[torch.Tensor] | None = [x.new_ones(b), x.new_ones(b)]  # the mirrors' signs before a crop
    for name, p in ops:
        spec = OPS[name]
        everyone = everyone or p.index.numel() == b
        touched.index_fill_(0, p.index, 1.0)
        if name in MIRRORS:
            sign = x.new_ones(b).index_fill_(0, p.index, -1.0)
            m[:, MIRRORS[name]] *= sign.unsqueeze(1)
            if before_crop is not None:
                before_crop[MIRRORS[name]] *= sign
        elif name == "crop":  # after mirrors only (see apply): zero what it shifts out, then shift
            dx, dy = _crop_shifts(x, p)
            ddx, ddy = dx * before_crop[0], dy * before_crop[1]  # type: ignore[index]  # its shift on x
            rows = torch.arange(h, device=x.device, dtype=x.dtype) + ddy.view(-1, 1)  # [B, H]: where rows go
            cols = torch.arange(w, device=x.device, dtype=x.dtype) + ddx.view(-1, 1)
            kept_rows, kept_cols = ((rows >= 0) & (rows < h)).to(x.dtype), ((cols >= 0) & (cols < w)).to(x.dtype)
            x.mul_((kept_rows.unsqueeze(2) * kept_cols.unsqueeze(1)).unsqueeze(1))
            m[:, :, 2] += torch.stack([dx, dy], -1)
            before_crop = None
        else:
            value = x.new_zeros(b).index_copy_(0, p.index, spec.value(p.magnitude.to(x.dtype)))
            a_op, t_op = spec.affine(value, h, w)  # type: ignore[misc]
            m = torch.baddbmm(F.pad(t_op.unsqueeze(-1), (2, 0)), a_op, m)
    warped = warp_affine(x, m[:, :, :2], m[:, :, 2])
    if everyone:
        x.copy_(warped)
    else:  # exact with weights 0 and 1
        x.lerp_(warped, touched.view(b, 1, 1, 1))


def _apply_op(x: torch.Tensor, name: str, p: OpParams) -> None:
    """Apply an op to its images of ``x`` in place: an op neutral at magnitude 0 that takes more than half
    the batch runs over all of it with 0 for the others (no gather and scatter of the images); else on its subset."""
    spec, b = OPS[name], x.shape[0]
    if spec.neutral_at_zero and b // 2 < p.index.numel() < b:
        mag = x.new_zeros(b).index_copy_(0, p.index, p.magnitude.to(x.dtype))
        rand = x.new_zeros(b, *p.rand.shape[1:]).index_copy_(0, p.index, p.rand.to(x.dtype))
        x.copy_(spec(x, mag, rand))
        return
    _apply_subset(x, p.index, lambda sub: spec(sub, p.magnitude, p.rand.to(x.dtype)))


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
