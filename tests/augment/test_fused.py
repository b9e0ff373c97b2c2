"""The fast paths of ``apply`` give what the ops give one by one: the crop and the mirrors as one gather (exactly),
a crop and mirrors joining an affine warp (up to float rounding), the disjoint ops of one layer warped together."""

from __future__ import annotations

import random

import pytest
import torch

from autoaug.augment.augmenter import OpParams, Params, apply, sample
from autoaug.augment.geometry import crop, shift_flip, shift_pixels
from autoaug.augment.ops import OPS
from autoaug.augment.presets import PRESETS

B, SHAPE = 48, (48, 3, 32, 32)


def _one_by_one(x: torch.Tensor, params: Params) -> torch.Tensor:
    """Each op on its own images in turn (over the whole batch, image ``i`` takes draw ``i``)."""
    x = x.clone()
    for name, p in params.ops:
        if p.index.numel() == len(x):
            x = OPS[name](x, p.magnitude, p.rand)
        else:
            x[p.index] = OPS[name](x[p.index], p.magnitude, p.rand)
    return x


def _op(name: str, n: int, g: torch.Generator, magnitude: float | None = None) -> tuple[str, OpParams]:
    """``name`` on ``n`` random images of the batch, at random magnitudes (or ``magnitude``)."""
    spec = OPS[name]
    index = torch.randperm(B, generator=g)[:n]
    mag = torch.rand(n, generator=g) * 2 - 1 if magnitude is None else torch.full((n,), magnitude)
    return name, OpParams(index, mag, torch.rand(n, spec.n_uniform, generator=g))


def _images(seed: int = 0) -> torch.Tensor:
    x = torch.rand(SHAPE, generator=torch.Generator().manual_seed(seed))
    return torch.nn.functional.avg_pool2d(x, 3, 1, 1)  # smooth, so a crop's cut shows in a bilinear warp


@pytest.mark.parametrize("order", [("hflip", "crop"), ("crop", "hflip"), ("vflip", "hflip", "crop", "vflip"),
                                   ("crop",), ("hflip", "hflip", "crop")])
@pytest.mark.parametrize("crop_share", [B, 30])
def test_crop_and_mirrors_as_one_gather_equal_them_one_by_one(order: tuple[str, ...], crop_share: int) -> None:
    g = torch.Generator().manual_seed(len(order) + crop_share)
    params = Params(tuple(_op(n, crop_share if n == "crop" else 20, g, 0.5 if n == "crop" else 0.0) for n in order))
    x = _images()
    assert torch.equal(apply(x, params), _one_by_one(x, params))
    xu = (x * 255).round().to(torch.uint8)
    assert torch.equal(apply(xu, params), (_one_by_one(xu.float() / 255, params) * 255).round().to(torch.uint8))


@pytest.mark.parametrize("order", [("hflip", "crop", "rotate"), ("crop", "hflip", "shear_x"),
                                   ("vflip", "crop", "translate_y", "hflip"), ("rotate", "hflip"),
                                   ("hflip", "crop", "zoom")])
@pytest.mark.parametrize("crop_share", [B, 30])
def test_crop_and_mirrors_joining_a_warp_equal_them_one_by_one(order: tuple[str, ...], crop_share: int) -> None:
    """One affine op in the run: its one resampling, fused or not; the crop's cut and the mirrors exact."""
    g = torch.Generator().manual_seed(len(order) + crop_share)
    ops = []
    for n in order:
        if n == "crop":
            ops.append(_op(n, crop_share, g, 0.5))
        elif n in ("hflip", "vflip"):
            ops.append(_op(n, 20, g, 0.0))
        else:
            ops.append(_op(n, 25, g))
    params = Params(tuple(ops))
    x = _images()
    fused, reference = apply(x, params), _one_by_one(x, params)
    torch.testing.assert_close(fused, reference, atol=2e-5, rtol=0)


def test_cropflip_on_top_of_randaugment_is_fused_and_matches_one_by_one_where_one_affine_op() -> None:
    """The preset's batches: images with at most one geometric op of the layer equal the ops one by one."""
    x = _images(1)
    params = sample(PRESETS["cropflip+randaugment"], SHAPE, 0.5, torch.Generator().manual_seed(0),
                    host=random.Random(0))
    geometric = torch.zeros(B)
    for name, p in params.ops:
        if OPS[name].affine is not None:
            geometric[p.index] += 1
    fused, reference = apply(x, params), _one_by_one(x, params)
    single = geometric <= 1
    assert single.sum() > B // 2
    torch.testing.assert_close(fused[single], reference[single], atol=2e-5, rtol=0)
    inner = (slice(None), slice(None), slice(6, -6), slice(6, -6))  # two warps resample twice: close inside
    assert (fused[~single][inner] - reference[~single][inner]).abs().mean() < 0.01


@pytest.mark.parametrize("preset", ["trivialaugment", "autoaugment"])
def test_disjoint_ops_warped_together_equal_the_general_fused_warp(preset: str) -> None:
    x = _images(2)
    params = sample(PRESETS[preset], SHAPE, 0.5, torch.Generator().manual_seed(0), host=random.Random(0))
    groups = {p.group for name, p in params.ops if OPS[name].affine is not None}
    assert groups and None not in groups
    ungrouped = Params(tuple((n, OpParams(p.index, p.magnitude, p.rand)) for n, p in params.ops))
    torch.testing.assert_close(apply(x, params), apply(x, ungrouped), atol=1e-6, rtol=0)
    # disjoint indeed: no image twice among the ops of one group
    for group in groups:
        index = torch.cat([p.index for _, p in params.ops if p.group == group])
        assert index.unique().numel() == index.numel()


def test_shift_flip_is_shift_pixels_then_the_mirrors() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(SHAPE, generator=g)
    dx, dy = torch.randint(-40, 41, (B,), generator=g), torch.randint(-40, 41, (B,), generator=g)
    fx, fy = torch.rand(B, generator=g) < 0.5, torch.rand(B, generator=g) < 0.5
    shifted = shift_pixels(x, dx, dy)
    reference = torch.where(fx.view(-1, 1, 1, 1), shifted.flip(3), shifted)
    reference = torch.where(fy.view(-1, 1, 1, 1), reference.flip(2), reference)
    assert torch.equal(shift_flip(x, dx, dy, fx, fy), reference)
    small = dx.clamp(-5, 5), dy.clamp(-3, 3)
    assert torch.equal(shift_flip(x, *small, bound=(3, 5)), shift_pixels(x, *small))


def test_crop_is_the_unbounded_shift_over_its_whole_range() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(200, 1, 28, 20, generator=g)
    pad, u = torch.rand(200, generator=g) * 0.25, torch.rand(200, 2, generator=g)
    py, px = (pad * 28).round(), (pad * 20).round()
    dy = (u[:, 0] * (2 * py + 1)).floor().clamp(max=2 * py) - py
    dx = (u[:, 1] * (2 * px + 1)).floor().clamp(max=2 * px) - px
    assert torch.equal(crop(x, pad, u), shift_pixels(x, dx.long(), dy.long()))


def test_images_no_geometric_op_touches_leave_the_fused_warp_exactly_as_they_came() -> None:
    x = _images(3)
    params = sample(PRESETS["randaugment"], SHAPE, 0.5, torch.Generator().manual_seed(1), host=random.Random(1))
    moved = torch.zeros(B, dtype=torch.bool)
    for name, p in params.ops:
        moved[p.index] |= OPS[name].affine is not None
    assert 0 < moved.sum() < B
    assert torch.equal(apply(x, params)[~moved], _one_by_one(x, params)[~moved])
