"""Geometric kernels: the affine warp and its maps, mirrors, pad-and-crop and random resized crop, batched with one
parameter set per image (the op registry, :mod:`autoaug.augment.ops`, names them).

Maps are forward, in pixels, y down, about the image centre: pixel ``p`` moves to ``a @ p + t``.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

Affine = tuple[torch.Tensor, torch.Tensor]  # a [B, 2, 2], t [B, 2] in pixels, y down, about the centre

def warp_affine(x: torch.Tensor, a: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Forward affine warp about the image centre: pixel ``p`` (y down) moves to ``a @ p + t``.

    ``a [B, 2, 2]`` and ``t [B, 2]`` are in pixels; bilinear sampling, zeros outside.
    """
    _, _, h, w = x.shape
    det = (a[:, 0, 0] * a[:, 1, 1] - a[:, 0, 1] * a[:, 1, 0]).view(-1, 1, 1)
    # the adjugate: a turned half round and transposed, its off-diagonal negated
    a_inv = a.flip((1, 2)).transpose(1, 2) * _signs(a.device, a.dtype) / det
    inverse = torch.cat([a_inv, -(a_inv @ t.unsqueeze(-1))], 2)  # [B, 2, 3]: output pixel -> input pixel
    # to normalized coordinates ([-1, 1] across the width and the height): scale row i by d_i and column j by
    # 1 / d_j, with d = (2 / w, 2 / h), one product with a constant (made once per shape)
    theta = inverse * _normalizer(h, w, a.device, a.dtype)
    return F.grid_sample(x, affine_grid(theta, h, w), mode="bilinear", padding_mode="zeros", align_corners=False)


@functools.lru_cache(maxsize=32)
def _signs(device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """``[[1, -1], [-1, 1]]``: the adjugate's signs (made once per device)."""
    return torch.ones(2, 2, device=device, dtype=dtype).fill_diagonal_(-1).neg_()


@functools.lru_cache(maxsize=32)
def _normalizer(h: int, w: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """``[2, 3]`` factors from a pixel map ``[a | t]`` about the centre to ``F.grid_sample``'s normalized one."""
    k = torch.ones(2, 3, device=device, dtype=dtype)
    k[0, 1], k[1, 0], k[0, 2], k[1, 2] = h / w, w / h, 2.0 / w, 2.0 / h
    return k


@functools.lru_cache(maxsize=32)
def _centres(h: int, w: int, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """The pixel centres in normalized coordinates: ``x [1, 1, W]`` and ``y [1, H, 1]`` (made once per shape)."""
    xs = (torch.arange(w, device=device, dtype=dtype) * 2 + 1) / w - 1
    ys = (torch.arange(h, device=device, dtype=dtype) * 2 + 1) / h - 1
    return xs.view(1, 1, w), ys.view(1, h, 1)


def affine_grid(theta: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """``F.affine_grid(theta, [B, C, h, w], align_corners=False)`` for ``theta [B, 2, 3]``, computed as a row
    ``[B, 2, 1, W]`` plus a column ``[B, 2, H, 1]``: one full-size sum (a tenth of its time on one CPU thread).
    The grid comes back as a permuted view, which ``F.grid_sample`` reads as fast."""
    xs, ys = _centres(h, w, theta.device, theta.dtype)
    t = theta.unsqueeze(-1).unsqueeze(-1)  # [B, 2, 3, 1, 1]
    row = torch.addcmul(t[:, :, 2], t[:, :, 0], xs)  # [B, 2, 1, W]
    return (row + t[:, :, 1] * ys).permute(0, 2, 3, 1)  # [B, H, W, 2]


@functools.lru_cache(maxsize=32)
def _basis(device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
    """Constant ``[2, 2]`` matrices (identity, turn, the two shears' units) and ``[2]`` vectors (zero, x, y) that the
    maps below are made of, made once per device and dtype: each map is then one or two kernels."""
    eye = torch.eye(2, device=device, dtype=dtype)
    turn = eye.flip(1) * torch.ones_like(eye).tril_(-1).mul_(-2).add_(1)  # [[0, 1], [-1, 0]]
    shear_x, shear_y = torch.zeros_like(eye), torch.zeros_like(eye)
    shear_x[0, 1] = shear_y[1, 0] = -1.0
    zero, unit_x, unit_y = torch.zeros(2, device=device, dtype=dtype), eye[0], eye[1]
    return eye, turn, shear_x, shear_y, zero, unit_x, unit_y


def _no_shift(v: torch.Tensor) -> torch.Tensor:
    return _basis(v.device, v.dtype)[4].expand(len(v), 2)


def _eye(v: torch.Tensor) -> torch.Tensor:
    return _basis(v.device, v.dtype)[0].expand(len(v), 2, 2)


# The maps below may return broadcast views (read them, do not write them).
def rotate_affine(deg: torch.Tensor, h: int, w: int) -> Affine:
    """Counter-clockwise by ``deg`` degrees."""
    eye, turn = _basis(deg.device, deg.dtype)[:2]
    r = torch.deg2rad(deg).view(-1, 1, 1)
    return torch.addcmul(torch.cos(r) * eye, torch.sin(r), turn), _no_shift(deg)  # [[c, s], [-s, c]]


def shear_x_affine(s: torch.Tensor, h: int, w: int) -> Affine:
    eye, _, unit = _basis(s.device, s.dtype)[:3]
    return torch.addcmul(eye, s.view(-1, 1, 1), unit), _no_shift(s)  # [[1, -s], [0, 1]]


def shear_y_affine(s: torch.Tensor, h: int, w: int) -> Affine:
    eye, unit = _basis(s.device, s.dtype)[0], _basis(s.device, s.dtype)[3]
    return torch.addcmul(eye, s.view(-1, 1, 1), unit), _no_shift(s)  # [[1, 0], [-s, 1]]


def translate_x_affine(frac: torch.Tensor, h: int, w: int) -> Affine:
    """Right by ``frac`` of the width."""
    return _eye(frac), (frac * w).unsqueeze(1) * _basis(frac.device, frac.dtype)[5]


def translate_y_affine(frac: torch.Tensor, h: int, w: int) -> Affine:
    """Down by ``frac`` of the height."""
    return _eye(frac), (frac * h).unsqueeze(1) * _basis(frac.device, frac.dtype)[6]


def zoom_affine(v: torch.Tensor, h: int, w: int) -> Affine:
    """Scale by ``1 + v`` about the centre (``v > 0`` zooms in)."""
    return (1 + v).view(-1, 1, 1) * _basis(v.device, v.dtype)[0], _no_shift(v)


def hflip(x: torch.Tensor, _v: torch.Tensor, _r: torch.Tensor) -> torch.Tensor:
    return x.flip(3)


def vflip(x: torch.Tensor, _v: torch.Tensor, _r: torch.Tensor) -> torch.Tensor:
    return x.flip(2)


def shift_pixels(x: torch.Tensor, dx: torch.Tensor, dy: torch.Tensor) -> torch.Tensor:
    """Shift each image by integer pixels ``dx [B]`` right and ``dy [B]`` down, zeros coming in."""
    b, c, h, w = x.shape
    src_i = torch.arange(h, device=x.device) - dy.view(-1, 1)  # [B, H]
    src_j = torch.arange(w, device=x.device) - dx.view(-1, 1)  # [B, W]
    valid = ((src_i >= 0) & (src_i < h)).unsqueeze(2) & ((src_j >= 0) & (src_j < w)).unsqueeze(1)
    idx = src_i.clamp(0, h - 1).unsqueeze(2) * w + src_j.clamp(0, w - 1).unsqueeze(1)  # [B, H, W]
    out = x.flatten(2).gather(2, idx.flatten(1).unsqueeze(1).expand(b, c, h * w)).view(b, c, h, w)
    return out * valid.unsqueeze(1).to(x.dtype)


CROP_MAX = 0.25  # the crop op's widest padding, a fraction of the side (its range)


def crop_bound(size: int) -> int:
    """The widest shift in px that :func:`crop` makes on a side of ``size`` px."""
    return min(math.ceil(CROP_MAX * size), size)


def crop_shifts(pad: torch.Tensor, u: torch.Tensor, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The integer shifts ``dx, dy [B]`` (float) of a random crop after zero padding by ``pad`` (fraction of the
    size, up to :data:`CROP_MAX`), drawn from uniforms ``u [B, 2]``: each uniform over ``-p .. p`` px."""
    p = (pad.clamp(max=CROP_MAX).unsqueeze(1) * _sides(h, w, pad.device, pad.dtype)).round()  # [B, 2]: py, px
    d = (u[:, :2] * (2 * p + 1)).floor_().clamp_(max=2 * p).sub_(p)
    return d[:, 1], d[:, 0]


@functools.lru_cache(maxsize=32)
def _sides(h: int, w: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """``[h, w]`` on the device (made once per shape)."""
    sides = torch.empty(2, device=device, dtype=dtype)
    sides[0], sides[1] = h, w
    return sides


def shift_flip(x: torch.Tensor, dx: torch.Tensor, dy: torch.Tensor, flip_x: torch.Tensor | None = None,
               flip_y: torch.Tensor | None = None, bound: tuple[int, int] | None = None) -> torch.Tensor:
    """:func:`shift_pixels`, then a mirror left-right of the images where ``flip_x [B]`` (bool) is set and top-down
    where ``flip_y [B]`` is: one gather from the batch zero-padded by ``bound`` (rows, cols; the widest shifts, by
    default the whole size) px."""
    b, c, h, w = x.shape
    by, bx = (h, w) if bound is None else (min(bound[0], h), min(bound[1], w))
    padded = F.pad(x, (bx, bx, by, by)) if by or bx else x
    rows, cols = torch.arange(h, device=x.device), torch.arange(w, device=x.device)
    if flip_y is not None:
        rows = torch.where(flip_y.view(-1, 1), (h - 1) - rows, rows)
    if flip_x is not None:
        cols = torch.where(flip_x.view(-1, 1), (w - 1) - cols, cols)
    rows = rows + (by - dy.long().clamp(-by, by)).view(-1, 1)  # [B, H] in the padded images
    cols = cols + (bx - dx.long().clamp(-bx, bx)).view(-1, 1)  # [B, W]
    idx = (rows * (w + 2 * bx)).unsqueeze(2) + cols.unsqueeze(1)  # [B, H, W]
    return padded.flatten(2).gather(2, idx.view(b, 1, h * w).expand(b, c, h * w)).view(b, c, h, w)


def crop(x: torch.Tensor, pad: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Random crop after zero padding by ``pad`` (fraction of the size, up to :data:`CROP_MAX`): an integer shift
    in ±pad px."""
    _, _, h, w = x.shape
    dx, dy = crop_shifts(pad, u, h, w)
    return shift_flip(x, dx, dy, bound=(crop_bound(h), crop_bound(w)))


RATIO = (3 / 4, 4 / 3)  # random resized crop: the range of a crop's aspect ratio (torchvision's and timm's)


TRIES = 10  # random resized crop: draws of area and ratio per image, the first that fits is taken (torchvision's)


def resized_crop_box(v: torch.Tensor, u: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Random resized crop boxes ``[B, 4]`` (top, left, height, width in whole pixels of an ``h x w`` image), drawn
    as torchvision's ``RandomResizedCrop`` draws them, for all images at once: of :data:`TRIES` draws of an area
    fraction uniform in ``[1 - v, 1]`` and an aspect ratio log-uniform in :data:`RATIO` (``u[:, :2 * TRIES]``),
    the first that fits; else the centre crop at the nearest ratio in range. Then a uniform position
    (``u[:, 2 * TRIES:]``)."""
    area = (1 - v.unsqueeze(1) * u[:, :TRIES]) * (h * w)
    log_lo, log_hi = math.log(RATIO[0]), math.log(RATIO[1])
    ratio = torch.exp(log_lo + u[:, TRIES : 2 * TRIES] * (log_hi - log_lo))
    widths, heights = (area * ratio).sqrt().round(), (area / ratio).sqrt().round()
    fits = (widths >= 1) & (widths <= w) & (heights >= 1) & (heights <= h)
    first = (fits.cumsum(1) == 1) & fits  # the first draw that fits, one-hot (none where nothing fits)
    any_fit = fits.any(1)
    if w / h < RATIO[0]:
        fallback = (w, round(w / RATIO[0]))
    elif w / h > RATIO[1]:
        fallback = (round(h * RATIO[1]), h)
    else:
        fallback = (w, h)
    width = torch.where(any_fit, (widths * first).sum(1), float(fallback[0]))
    height = torch.where(any_fit, (heights * first).sum(1), float(fallback[1]))
    top = torch.where(any_fit, (u[:, 2 * TRIES + 1] * (h - height + 1)).floor().clamp(max=h - height),
                      ((h - height) / 2).round())
    left = torch.where(any_fit, (u[:, 2 * TRIES] * (w - width + 1)).floor().clamp(max=w - width),
                       ((w - width) / 2).round())
    return torch.stack([top, left, height, width], -1)


def resized_crop(x: torch.Tensor, v: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Random resized crop (:func:`resized_crop_box`) scaled back to the full size: one bilinear warp per image
    (as torchvision's ``resized_crop`` samples when it enlarges)."""
    _, _, h, w = x.shape
    top, left, height, width = resized_crop_box(v, u, h, w).unbind(-1)
    zero = torch.zeros_like(top)
    theta = torch.stack([torch.stack([width / w, zero, (2 * left + width) / w - 1], -1),
                         torch.stack([zero, height / h, (2 * top + height) / h - 1], -1)], 1)
    return F.grid_sample(x, affine_grid(theta, h, w), mode="bilinear", padding_mode="border", align_corners=False)
