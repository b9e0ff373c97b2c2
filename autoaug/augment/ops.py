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

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from autoaug.augment.geometry import (
    CROP_MAX,
    TRIES,
    Affine,
    crop,
    hflip,
    resized_crop,
    rotate_affine,
    shear_x_affine,
    shear_y_affine,
    translate_x_affine,
    translate_y_affine,
    vflip,
    warp_affine,
    zoom_affine,
)
from autoaug.errors import choice_error

Kernel = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


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
    # magnitude 0 (and zero ``rand``) leaves every image exactly as it is: the augmenter may run the op over the
    # whole batch with 0 for the images it skips, where that is cheaper than gathering and scattering them
    neutral_at_zero: bool = False

    @property
    def has_magnitude(self) -> bool:
        return self.low != self.high

    def value(self, mag: torch.Tensor) -> torch.Tensor:
        """Map normalized magnitudes ``[B]`` (negative = opposite direction for signed ops) to physical units."""
        if self.low == 0:  # the same values in one kernel: the sign carries over, |m| * r exact either way
            return mag * self.high if self.signed else mag.abs() * self.high
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
    """``factor * x + (1 - factor) * other``, clamped to [0, 1] (one kernel: exactly ``x`` at factor 1)."""
    return torch.lerp(other, x, _bcast(factor)).clamp_(0, 1)


# ------------------------------------------------------------------- geometric (kernels: autoaug.augment.geometry)
def _warp_kernel(affine: Callable[[torch.Tensor, int, int], Affine]) -> Kernel:
    def kernel(x: torch.Tensor, v: torch.Tensor, _: torch.Tensor) -> torch.Tensor:
        return warp_affine(x, *affine(v, x.shape[2], x.shape[3]))

    kernel.__doc__ = affine.__doc__
    return kernel


def cutout(x: torch.Tensor, side: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Fill a square of ``side`` (fraction of the shorter edge) centred at a uniform position with grey."""
    _, _, h, w = x.shape
    half = _bcast(side * min(h, w) / 2).squeeze(1)  # [B, 1, 1]
    ii = torch.arange(h, device=x.device, dtype=x.dtype).view(1, h, 1) + 0.5
    jj = torch.arange(w, device=x.device, dtype=x.dtype).view(1, 1, w) + 0.5
    inside = ((ii - (u[:, 0] * h).view(-1, 1, 1)).abs() < half) & ((jj - (u[:, 1] * w).view(-1, 1, 1)).abs() < half)
    return x.masked_fill(inside.unsqueeze(1), 0.5)


# ----------------------------------------------------------------------------------------------- colour
def brightness(x: torch.Tensor, v: torch.Tensor, _: torch.Tensor) -> torch.Tensor:
    return (x * _bcast(1 + v)).clamp_(0, 1)


def contrast(x: torch.Tensor, v: torch.Tensor, _: torch.Tensor) -> torch.Tensor:
    """Blend with the mean luminance (the luminance of the channel means: no grayscale image)."""
    means = x.mean(dim=(2, 3), keepdim=True)  # [B, C, 1, 1]
    return _blend(x, _gray(means), 1 + v)


def saturation(x: torch.Tensor, v: torch.Tensor, _: torch.Tensor) -> torch.Tensor:
    """Blend with the grayscale image; identity on 1-channel images."""
    return x if x.shape[1] == 1 else _blend(x, _gray(x), 1 + v)


def sharpness(x: torch.Tensor, v: torch.Tensor, _: torch.Tensor) -> torch.Tensor:
    """Blend with a 3x3 smoothed copy (borders kept), as PIL/torchvision: the kernel ``[[1, 1, 1], [1, 5, 1],
    [1, 1, 1]] / 13`` as a box sum of shifted views plus four more of the centre (no convolution call)."""
    if min(x.shape[2:]) <= 2:
        return x
    rows = x[..., :-2, :] + x[..., 1:-1, :] + x[..., 2:, :]  # [B, C, H - 2, W]
    centre = x[..., 1:-1, 1:-1]
    smooth = (rows[..., :-2] + rows[..., 1:-1] + rows[..., 2:]).add_(centre, alpha=4).div_(13)
    out = x.clone()  # the border: blended with itself
    out[..., 1:-1, 1:-1] = torch.lerp(smooth, centre, _bcast(1 + v)).clamp_(0, 1)
    return out


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
    hist = torch.zeros(b, c, 256, dtype=torch.long, device=x.device).scatter_add_(2, flat,
                                                                                  flat.new_ones(1).expand_as(flat))
    cum = hist.cumsum(2)
    last = hist.gather(2, cum.argmax(2, keepdim=True))  # count of the brightest level present
    step = torch.div(h * w - last, 255, rounding_mode="floor")
    valid = step != 0
    step = step.clamp(min=1)
    lut = torch.div(cum[..., :-1] + step // 2, step, rounding_mode="floor").clamp(0, 255)
    lut = torch.cat([lut.new_zeros(b, c, 1), lut], 2).to(x.dtype).div_(255)  # [B, C, 256]: looked up as it is
    return torch.where(valid.unsqueeze(-1), lut.gather(2, flat).view(b, c, h, w), x)


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
        OpSpec("brightness", brightness, 0.0, 0.99, signed=True, unit="factor - 1", neutral_at_zero=True),
        OpSpec("contrast", contrast, 0.0, 0.99, signed=True, unit="factor - 1", neutral_at_zero=True),
        OpSpec("saturation", saturation, 0.0, 0.99, signed=True, unit="factor - 1", neutral_at_zero=True),
        OpSpec("sharpness", sharpness, 0.0, 0.99, signed=True, unit="factor - 1", neutral_at_zero=True),
        OpSpec("posterize", posterize, 0.0, 6.0, unit="bits dropped"),
        OpSpec("solarize", solarize, 0.0, 1.0, unit="1 - threshold", neutral_at_zero=True),
        OpSpec("autocontrast", autocontrast),
        OpSpec("equalize", equalize),
        OpSpec("invert", invert),
        OpSpec("gaussian_noise", gaussian_noise, 0.0, 0.2, unit="sigma", dense_noise=True),
        OpSpec("gaussian_blur", gaussian_blur, 0.0, BLUR_MAX_SIGMA, unit="sigma px"),
        OpSpec("cutout", cutout, 0.0, 0.5, unit="x size", n_uniform=2, neutral_at_zero=True),
        OpSpec("crop", crop, 0.0, CROP_MAX, unit="x size padding", n_uniform=2),
        OpSpec("resized_crop", resized_crop, 0.0, 0.92, unit="1 - least area", n_uniform=2 * TRIES + 2),
    )
}


def get_op(name: str) -> OpSpec:
    try:
        return OPS[name]
    except KeyError:
        raise choice_error("op", name, OPS) from None
