"""The op registry: pure, batched image ops with one parameter set per image.

Every kernel takes float images ``[B, C, H, W]`` in ``[0, 1]``, a physical value per image ``v[B]`` and,
for ops that need more randomness, ``rand`` (``[B, k]`` uniforms, or ``[B, C, H, W]`` standard normal
noise) drawn by :mod:`autoaug.augment.augmenter`. Kernels hold no randomness of their own.

Magnitudes are normalized to ``[0, 1]`` and mapped to physical units in one place,
:meth:`OpSpec.value`: ``low + |m| * (high - low)``, negated for signed ops when ``m < 0``.
The physical ranges at ``m = 1`` are the wide ranges of TrivialAugment, so every preset is a point of
the same space; search spaces narrow them per op.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from autoaug.errors import choice_error

Kernel = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
Affine = tuple[torch.Tensor, torch.Tensor]  # a [B, 2, 2], t [B, 2] in pixels, y down, about the centre


@dataclass(frozen=True)
class OpSpec:
    """One op: its kernel, physical range ``low..high`` (at magnitude 0..1), and randomness needs."""

    name: str
    fn: Kernel
    low: float = 0.0
    high: float = 0.0
    signed: bool = False
    unit: str = ""
    n_uniform: int = 0  # per-image uniforms the kernel needs (positions, offsets)
    dense_noise: bool = False  # kernel needs standard normal noise shaped like the images
    affine: Callable[[torch.Tensor, int, int], Affine] | None = None  # geometric ops: composable matrices

    @property
    def has_magnitude(self) -> bool:
        return self.low != self.high

    def value(self, mag: torch.Tensor) -> torch.Tensor:
        """Map normalized magnitudes ``[B]`` (negative = opposite direction for signed ops) to physical units."""
        v = self.low + mag.abs() * (self.high - self.low)
        return torch.where(mag < 0, -v, v) if self.signed else v

    def __call__(self, imgs: torch.Tensor, mag: torch.Tensor, rand: torch.Tensor | None = None) -> torch.Tensor:
        """Apply to float ``imgs [B, C, H, W]`` with normalized magnitudes ``mag [B]``."""
        if rand is None:
            rand = imgs.new_empty(imgs.shape[0], 0)
        return self.fn(imgs, self.value(mag.to(imgs.dtype)), rand)

    def describe(self) -> str:
        if not self.has_magnitude:
            return "no magnitude"
        sign = "±" if self.signed else ""
        return f"{sign}{self.low:g}..{sign}{self.high:g} {self.unit}".rstrip()


def _bcast(v: torch.Tensor) -> torch.Tensor:
    return v.view(-1, 1, 1, 1)


def _gray(x: torch.Tensor) -> torch.Tensor:
    """``[B, 1, H, W]`` luminance (ITU-R 601-2, as torchvision)."""
    if x.shape[1] == 1:
        return x
    r, g, b = x.unbind(1)
    return (0.2989 * r + 0.587 * g + 0.114 * b).unsqueeze(1)


def _blend(x: torch.Tensor, other: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    f = _bcast(factor)
    return (f * x + (1 - f) * other).clamp_(0, 1)


# ------------------------------------------------------------------------------------------- geometric
def warp_affine(x: torch.Tensor, a: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Forward affine warp about the image centre: pixel ``p`` (y down) moves to ``a @ p + t``.

    ``a [B, 2, 2]`` and ``t [B, 2]`` are in pixels; bilinear sampling, zeros outside.
    """
    _, _, h, w = x.shape
    det = a[:, 0, 0] * a[:, 1, 1] - a[:, 0, 1] * a[:, 1, 0]
    a_inv = torch.stack([torch.stack([a[:, 1, 1], -a[:, 0, 1]], -1),
                         torch.stack([-a[:, 1, 0], a[:, 0, 0]], -1)], 1) / det.view(-1, 1, 1)
    t_inv = -(a_inv @ t.unsqueeze(-1)).squeeze(-1)
    # to normalized coordinates ([-1, 1] across the width and the height): scale row i by d_i and column j by
    # 1 / d_j, with d = (2 / w, 2 / h); python scalars, so nothing is copied to the device
    theta = torch.stack([torch.stack([a_inv[:, 0, 0], a_inv[:, 0, 1] * (h / w), t_inv[:, 0] * (2.0 / w)], -1),
                         torch.stack([a_inv[:, 1, 0] * (w / h), a_inv[:, 1, 1], t_inv[:, 1] * (2.0 / h)], -1)], 1)
    return F.grid_sample(x, affine_grid(theta, h, w), mode="bilinear", padding_mode="zeros", align_corners=False)


@functools.lru_cache(maxsize=32)
def _centres(h: int, w: int, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """The pixel centres in normalized coordinates: ``x [1, 1, W]`` and ``y [1, H, 1]`` (made once per shape)."""
    xs = (torch.arange(w, device=device, dtype=dtype) * 2 + 1) / w - 1
    ys = (torch.arange(h, device=device, dtype=dtype) * 2 + 1) / h - 1
    return xs.view(1, 1, w), ys.view(1, h, 1)


def affine_grid(theta: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """``F.affine_grid(theta, [B, C, h, w], align_corners=False)`` for ``theta [B, 2, 3]``, computed as two
    broadcast planes (a third of its time on one CPU thread)."""
    xs, ys = _centres(h, w, theta.device, theta.dtype)
    t = theta.unsqueeze(-1).unsqueeze(-1)  # [B, 2, 3, 1, 1]
    return torch.stack([t[:, i, 0] * xs + t[:, i, 1] * ys + t[:, i, 2] for i in range(2)], -1)


def _eye(v: torch.Tensor) -> torch.Tensor:
    return torch.eye(2, dtype=v.dtype, device=v.device).expand(len(v), 2, 2).clone()


def _no_shift(v: torch.Tensor) -> torch.Tensor:
    return v.new_zeros(len(v), 2)


def rotate_affine(deg: torch.Tensor, h: int, w: int) -> Affine:
    """Counter-clockwise by ``deg`` degrees."""
    r = torch.deg2rad(deg)
    c, s = torch.cos(r), torch.sin(r)
    return torch.stack([torch.stack([c, s], -1), torch.stack([-s, c], -1)], 1), _no_shift(deg)


def shear_x_affine(s: torch.Tensor, h: int, w: int) -> Affine:
    a = _eye(s)
    a[:, 0, 1] = -s
    return a, _no_shift(s)


def shear_y_affine(s: torch.Tensor, h: int, w: int) -> Affine:
    a = _eye(s)
    a[:, 1, 0] = -s
    return a, _no_shift(s)


def translate_x_affine(frac: torch.Tensor, h: int, w: int) -> Affine:
    """Right by ``frac`` of the width."""
    return _eye(frac), torch.stack([frac * w, torch.zeros_like(frac)], -1)


def translate_y_affine(frac: torch.Tensor, h: int, w: int) -> Affine:
    """Down by ``frac`` of the height."""
    return _eye(frac), torch.stack([torch.zeros_like(frac), frac * h], -1)


def zoom_affine(v: torch.Tensor, h: int, w: int) -> Affine:
    """Scale by ``1 + v`` about the centre (``v > 0`` zooms in)."""
    return _eye(v) * (1 + v).view(-1, 1, 1), _no_shift(v)


def _warp_kernel(affine: Callable[[torch.Tensor, int, int], Affine]) -> Kernel:
    def kernel(x: torch.Tensor, v: torch.Tensor, _: torch.Tensor) -> torch.Tensor:
        return warp_affine(x, *affine(v, x.shape[2], x.shape[3]))

    kernel.__doc__ = affine.__doc__
    return kernel


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


def crop(x: torch.Tensor, pad: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Random crop after zero padding by ``pad`` (fraction of the size): an integer shift in ±pad px."""
    _, _, h, w = x.shape
    py, px = (pad * h).round(), (pad * w).round()
    dy = (u[:, 0] * (2 * py + 1)).floor().clamp(max=2 * py) - py
    dx = (u[:, 1] * (2 * px + 1)).floor().clamp(max=2 * px) - px
    return shift_pixels(x, dx.long(), dy.long())


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


def cutout(x: torch.Tensor, side: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Fill a square of ``side`` (fraction of the shorter edge) centred at a uniform position with grey."""
    _, _, h, w = x.shape
    half = _bcast(side * min(h, w) / 2).squeeze(1)  # [B, 1, 1]
    ii = torch.arange(h, device=x.device, dtype=x.dtype).view(1, h, 1) + 0.5
    jj = torch.arange(w, device=x.device, dtype=x.dtype).view(1, 1, w) + 0.5
    inside = ((ii - (u[:, 0] * h).view(-1, 1, 1)).abs() < half) & ((jj - (u[:, 1] * w).view(-1, 1, 1)).abs() < half)
    return torch.where(inside.unsqueeze(1), torch.full_like(x, 0.5), x)


# ----------------------------------------------------------------------------------------------- colour
def brightness(x: torch.Tensor, v: torch.Tensor, _: torch.Tensor) -> torch.Tensor:
    return (x * _bcast(1 + v)).clamp_(0, 1)


def contrast(x: torch.Tensor, v: torch.Tensor, _: torch.Tensor) -> torch.Tensor:
    return _blend(x, _gray(x).mean(dim=(1, 2, 3), keepdim=True), 1 + v)


def saturation(x: torch.Tensor, v: torch.Tensor, _: torch.Tensor) -> torch.Tensor:
    """Blend with the grayscale image; identity on 1-channel images."""
    return x if x.shape[1] == 1 else _blend(x, _gray(x), 1 + v)


def sharpness(x: torch.Tensor, v: torch.Tensor, _: torch.Tensor) -> torch.Tensor:
    """Blend with a 3x3 smoothed copy (borders kept), as PIL/torchvision."""
    c = x.shape[1]
    if min(x.shape[2:]) <= 2:
        return x
    k = x.new_full((c, 1, 3, 3), 1 / 13)
    k[:, :, 1, 1] = 5 / 13
    smooth = F.conv2d(x, k, groups=c)
    degenerate = x.clone()
    degenerate[..., 1:-1, 1:-1] = smooth
    return _blend(x, degenerate, 1 + v)


def posterize(x: torch.Tensor, v: torch.Tensor, _: torch.Tensor) -> torch.Tensor:
    """Drop ``round(v)`` low bits of each 8-bit value."""
    q = _bcast(torch.exp2(v.round()))
    return torch.floor((x * 255).round() / q) * q / 255


def solarize(x: torch.Tensor, v: torch.Tensor, _: torch.Tensor) -> torch.Tensor:
    """Invert the pixels above ``1 - v``."""
    return torch.where(x > _bcast(1 - v), 1 - x, x)


def autocontrast(x: torch.Tensor, _v: torch.Tensor, _r: torch.Tensor) -> torch.Tensor:
    lo, hi = x.amin(dim=(2, 3), keepdim=True), x.amax(dim=(2, 3), keepdim=True)
    flat = hi == lo
    lo, hi = torch.where(flat, 0.0, lo), torch.where(flat, 1.0, hi)
    return ((x - lo) / (hi - lo)).clamp_(0, 1)


def equalize(x: torch.Tensor, _v: torch.Tensor, _r: torch.Tensor) -> torch.Tensor:
    """Histogram equalization per image and channel on 8-bit levels (PIL's algorithm, as torchvision)."""
    b, c, h, w = x.shape
    flat = (x * 255).round().long().flatten(2)  # [B, C, HW]
    hist = torch.zeros(b, c, 256, dtype=torch.long, device=x.device).scatter_add_(2, flat, torch.ones_like(flat))
    cum = hist.cumsum(2)
    last = hist.gather(2, cum.argmax(2, keepdim=True))  # count of the brightest level present
    step = torch.div(h * w - last, 255, rounding_mode="floor")
    valid = step != 0
    step = step.clamp(min=1)
    lut = torch.div(cum[..., :-1] + step // 2, step, rounding_mode="floor").clamp(0, 255)
    lut = torch.cat([lut.new_zeros(b, c, 1), lut], 2)
    out = lut.gather(2, flat).view(b, c, h, w).to(x.dtype) / 255
    return torch.where(valid.unsqueeze(-1), out, x)


def invert(x: torch.Tensor, _v: torch.Tensor, _r: torch.Tensor) -> torch.Tensor:
    return 1 - x


def gaussian_noise(x: torch.Tensor, sigma: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    return (x + _bcast(sigma) * noise).clamp_(0, 1)


BLUR_MAX_SIGMA = 2.0  # px: the blur op's range, and the widest kernel gaussian_blur builds


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor, _: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian blur, standard deviation ``sigma`` px per image (up to :data:`BLUR_MAX_SIGMA`), reflect
    padding. The kernel's width is fixed by that bound, not read from ``sigma`` (no device sync)."""
    b, c, h, w = x.shape
    limit = (min(h, w) - 1) // 2
    radius = max(1, min(math.ceil(3 * BLUR_MAX_SIGMA), limit))
    offs = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    s = sigma.clamp(min=1e-3).view(-1, 1)
    own_radius = torch.ceil(3 * s).clamp(max=limit)  # each image's kernel is cut at its own 3 sigma
    k = torch.exp(-0.5 * (offs / s) ** 2) * (offs.abs() <= own_radius)
    k = torch.where(sigma.view(-1, 1) < 1e-3, (offs == 0).to(x.dtype), k)
    k = (k / k.sum(1, keepdim=True)).repeat_interleave(c, 0)  # [B*C, K]
    y = F.pad(x.reshape(1, b * c, h, w), (radius, radius, radius, radius), mode="reflect")
    y = F.conv2d(y, k.view(b * c, 1, 1, -1), groups=b * c)
    y = F.conv2d(y, k.view(b * c, 1, -1, 1), groups=b * c)
    return y.view(b, c, h, w)


def _geometric(name: str, affine: Callable[[torch.Tensor, int, int], Affine], high: float, unit: str) -> OpSpec:
    return OpSpec(name, _warp_kernel(affine), 0.0, high, signed=True, unit=unit, affine=affine)


def identity(x: torch.Tensor, _v: torch.Tensor, _r: torch.Tensor) -> torch.Tensor:
    return x


OPS: dict[str, OpSpec] = {
    op.name: op
    for op in (
        OpSpec("identity", identity),
        _geometric("rotate", rotate_affine, 135.0, "deg"),
        _geometric("shear_x", shear_x_affine, 0.99, "shear factor"),
        _geometric("shear_y", shear_y_affine, 0.99, "shear factor"),
        _geometric("translate_x", translate_x_affine, 1.0, "x width"),
        _geometric("translate_y", translate_y_affine, 1.0, "x height"),
        _geometric("zoom", zoom_affine, 0.5, "scale - 1"),
        OpSpec("hflip", hflip),
        OpSpec("vflip", vflip),
        OpSpec("brightness", brightness, 0.0, 0.99, signed=True, unit="factor - 1"),
        OpSpec("contrast", contrast, 0.0, 0.99, signed=True, unit="factor - 1"),
        OpSpec("saturation", saturation, 0.0, 0.99, signed=True, unit="factor - 1"),
        OpSpec("sharpness", sharpness, 0.0, 0.99, signed=True, unit="factor - 1"),
        OpSpec("posterize", posterize, 0.0, 6.0, unit="bits dropped"),
        OpSpec("solarize", solarize, 0.0, 1.0, unit="1 - threshold"),
        OpSpec("autocontrast", autocontrast),
        OpSpec("equalize", equalize),
        OpSpec("invert", invert),
        OpSpec("gaussian_noise", gaussian_noise, 0.0, 0.2, unit="sigma", dense_noise=True),
        OpSpec("gaussian_blur", gaussian_blur, 0.0, BLUR_MAX_SIGMA, unit="sigma px"),
        OpSpec("cutout", cutout, 0.0, 0.5, unit="x size", n_uniform=2),
        OpSpec("crop", crop, 0.0, 0.25, unit="x size padding", n_uniform=2),
        OpSpec("resized_crop", resized_crop, 0.0, 0.92, unit="1 - least area", n_uniform=2 * TRIES + 2),
    )
}


def get_op(name: str) -> OpSpec:
    try:
        return OPS[name]
    except KeyError:
        raise choice_error("op", name, OPS) from None
