"""Robustness of a trained classifier: common corruptions (after CIFAR-10-C) and a one-step FGSM attack.

Every corruption takes float images ``[B, C, H, W]`` in ``[0, 1]`` (1 or 3 channels), one physical ``level``
for the whole batch and an optional ``torch.Generator``, and returns images of the same shape in ``[0, 1]``.
Severities 1..5 map to levels as in Hendrycks & Dietterich (2019), CIFAR-10-C (32 px images):

================  ======================================  ==================================
corruption        levels at severity 1..5                 unit
================  ======================================  ==================================
gaussian_noise    0.04, 0.06, 0.08, 0.09, 0.10            noise sigma on [0, 1] images
gaussian_blur     0.4, 0.6, 0.7, 0.8, 1.0                 blur sigma in px
contrast          0.75, 0.5, 0.4, 0.3, 0.15               factor toward the image mean
brightness        0.05, 0.1, 0.15, 0.2, 0.3               added to every pixel
pixelate          0.95, 0.9, 0.85, 0.75, 0.65             downscale factor (box filter)
jpeg              80, 65, 58, 50, 40                      JPEG quality
================  ======================================  ==================================

At 28 px pixelate keeps 26, 25, 23, 21, 18 px and at 32 px 30, 28, 27, 24, 20 px; blur and noise levels are in
absolute pixel and intensity units, so they apply unchanged at 28 px. Brightness adds to every channel (CIFAR-10-C
adds to the HSV value), which also works on 1-channel images.

Models take float images in ``[0, 1]`` (normalization inside), as those returned by :func:`autoaug.train.trainer.train`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.io import decode_jpeg, encode_jpeg

from autoaug.augment import ops
from autoaug.errors import AutoaugError, choice_error
from autoaug.seeding import derive_seed, make_generator
from autoaug.train.batches import to_float

CorruptionFn = Callable[[torch.Tensor, float, torch.Generator | None], torch.Tensor]
SEVERITIES = (1, 2, 3, 4, 5)
FGSM_EPSILON = 8 / 255


def check_severity(severity: int) -> int:
    if isinstance(severity, bool) or severity not in SEVERITIES:
        raise AutoaugError(f"severity {severity!r} must be one of 1, 2, 3, 4, 5")
    return severity


@dataclass(frozen=True)
class Corruption:
    """One corruption: its function, the physical level at each severity 1..5 and the level's unit."""

    name: str
    fn: CorruptionFn
    severities: tuple[float, float, float, float, float]
    unit: str

    def level(self, severity: int) -> float:
        return self.severities[check_severity(severity) - 1]

    def __call__(self, x: torch.Tensor, severity: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Corrupt float images ``x [B, C, H, W]`` in ``[0, 1]`` at ``severity`` 1..5."""
        return self.fn(x, self.level(severity), generator)


def _full(x: torch.Tensor, level: float) -> torch.Tensor:
    return x.new_full((x.shape[0],), level)


def gaussian_noise(x: torch.Tensor, sigma: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Add independent normal noise of standard deviation ``sigma`` to every pixel, then clamp."""
    device = generator.device if generator is not None else x.device
    noise = torch.randn(x.shape, generator=generator, device=device, dtype=x.dtype).to(x.device)
    return ops.gaussian_noise(x, _full(x, sigma), noise)


def gaussian_blur(x: torch.Tensor, sigma: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Gaussian blur of standard deviation ``sigma`` px (kernel cut at 3 sigma, reflect padding)."""
    return ops.gaussian_blur(x, _full(x, sigma), x.new_empty(x.shape[0], 0))


def contrast(x: torch.Tensor, factor: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """``(x - mean) * factor + mean`` with the mean of each image and channel."""
    mean = x.mean(dim=(2, 3), keepdim=True)
    return ((x - mean) * factor + mean).clamp_(0, 1)


def brightness(x: torch.Tensor, shift: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Add ``shift`` to every pixel, then clamp."""
    return (x + shift).clamp_(0, 1)


def box_resize_matrix(n_in: int, n_out: int, device: torch.device | None = None,
                      dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``[n_out, n_in]`` resampling matrix of PIL's BOX filter along one axis.

    Downscaling averages the input pixels whose centres fall inside each output pixel; upscaling takes the
    input pixel under each output pixel's centre.
    """
    scale = n_in / n_out
    centre = (torch.arange(n_out, device=device, dtype=torch.float64) + 0.5) * scale
    u = ((torch.arange(n_in, device=device, dtype=torch.float64) + 0.5) - centre.unsqueeze(1)) / max(scale, 1.0)
    m = ((u >= -0.5) & (u < 0.5)).to(torch.float64)
    return (m / m.sum(1, keepdim=True)).to(dtype)


def pixelate(x: torch.Tensor, factor: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Box-downscale to ``int(factor * size)`` px and box-upscale back (PIL ``BOX`` both ways, as CIFAR-10-C)."""
    h, w = x.shape[2:]
    hs, ws = max(1, int(h * factor)), max(1, int(w * factor))
    down_h, down_w = (box_resize_matrix(n, m, x.device, x.dtype) for n, m in ((h, hs), (w, ws)))
    up_h, up_w = (box_resize_matrix(m, n, x.device, x.dtype) for n, m in ((h, hs), (w, ws)))
    return ((up_h @ down_h) @ x @ (up_w @ down_w).T).clamp_(0, 1)


def jpeg(x: torch.Tensor, quality: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Encode at JPEG ``quality`` (1..100) and decode, image by image on the CPU."""
    q = (x * 255).round_().to(torch.uint8).cpu()
    decoded = decode_jpeg(encode_jpeg([img.contiguous() for img in q], quality=round(quality)))
    return to_float(torch.stack(decoded)).to(device=x.device, dtype=x.dtype)


CORRUPTIONS: dict[str, Corruption] = {
    c.name: c
    for c in (
        Corruption("gaussian_noise", gaussian_noise, (0.04, 0.06, 0.08, 0.09, 0.10), "noise sigma"),
        Corruption("gaussian_blur", gaussian_blur, (0.4, 0.6, 0.7, 0.8, 1.0), "sigma px"),
        Corruption("contrast", contrast, (0.75, 0.5, 0.4, 0.3, 0.15), "factor toward the mean"),
        Corruption("brightness", brightness, (0.05, 0.1, 0.15, 0.2, 0.3), "added shift"),
        Corruption("pixelate", pixelate, (0.95, 0.9, 0.85, 0.75, 0.65), "downscale factor"),
        Corruption("jpeg", jpeg, (80, 65, 58, 50, 40), "quality"),
    )
}


def get_corruption(name: str) -> Corruption:
    try:
        return CORRUPTIONS[name]
    except KeyError:
        raise choice_error("corruption", name, CORRUPTIONS) from None


def _check_data(x: torch.Tensor, y: torch.Tensor, batch_size: int) -> None:
    if x.dtype != torch.uint8 or x.dim() != 4:
        raise AutoaugError(f"images must be uint8 [N, C, H, W], got {x.dtype} {tuple(x.shape)}")
    if len(x) != len(y):
        raise AutoaugError(f"{len(x)} images but {len(y)} labels")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise AutoaugError(f"batch_size {batch_size!r} must be a positive integer")


def _batches(x: torch.Tensor, y: torch.Tensor, batch_size: int,
             device: torch.device) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Float images ``[b, C, H, W]`` in ``[0, 1]`` and labels ``[b]`` on ``device``."""
    for i in range(0, len(y), batch_size):
        yield to_float(x[i : i + batch_size].to(device)), y[i : i + batch_size].to(device)


def corruption_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *,
                        corruptions: Sequence[str] | None = None, severities: Sequence[int] = SEVERITIES,
                        batch_size: int = 1024, seed: int = 0, split: bool = False) -> dict[str, dict[int, float]]:
    """Accuracy ``{corruption: {severity: acc}}`` of ``model`` on uint8 images ``x [N, C, H, W]``, labels ``y [N]``.

    ``corruptions``: names from :data:`CORRUPTIONS` (default all). ``split``: each severity on its own share of
    the images (image ``i`` at the ``i mod 5``-th severity), so a corruption costs one pass over ``x`` instead
    of one per severity. Noise is drawn from a generator seeded per corruption and severity from ``seed``.
    Leaves the model in eval mode.
    """
    _check_data(x, y, batch_size)
    specs = [get_corruption(n) for n in (CORRUPTIONS if corruptions is None else corruptions)]
    severities = [check_severity(s) for s in severities]
    model.eval()
    device = next(model.parameters()).device
    out: dict[str, dict[int, float]] = {}
    with torch.no_grad():
        for spec in specs:
            out[spec.name] = {}
            for i, s in enumerate(severities):
                xs, ys = (x[i :: len(severities)], y[i :: len(severities)]) if split else (x, y)
                generator = make_generator(derive_seed(seed, "corruption", spec.name, s), device)
                correct = sum(int((model(spec(xb, s, generator)).argmax(1) == yb).sum())
                              for xb, yb in _batches(xs, ys, batch_size, device))
                out[spec.name][s] = correct / len(ys) if len(ys) else math.nan
    return out


def fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epsilon: float = FGSM_EPSILON) -> torch.Tensor:
    """One-step FGSM on float images ``x [B, C, H, W]`` in ``[0, 1]``: ``clamp(x + epsilon * sign(grad), 0, 1)``.

    The gradient of the summed cross-entropy is taken with respect to the input only; parameters are untouched.
    The model is used in its current mode: :func:`fgsm_accuracy` puts it in eval mode first.
    """
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        loss = F.cross_entropy(model(x), y, reduction="sum")
        (grad,) = torch.autograd.grad(loss, x)
    return (x.detach() + epsilon * grad.sign()).clamp_(0, 1)


def fgsm_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, epsilon: float = FGSM_EPSILON,
                  batch_size: int = 1024) -> float:
    """Accuracy of ``model`` on FGSM examples of uint8 images ``x [N, C, H, W]`` with labels ``y [N]``.

    ``epsilon``: L-infinity budget on ``[0, 1]`` images; the default 8/255 is the usual CIFAR-10 budget.
    Each image is attacked with the model in eval mode (BatchNorm running statistics, no dropout).
    """
    _check_data(x, y, batch_size)
    if not (math.isfinite(epsilon) and epsilon >= 0):
        raise AutoaugError(f"epsilon {epsilon!r} must be a number >= 0")
    model.eval()
    device = next(model.parameters()).device
    correct = 0
    for xb, yb in _batches(x, y, batch_size, device):
        x_adv = fgsm(model, xb, yb, epsilon)
        with torch.no_grad():
            correct += int((model(x_adv).argmax(1) == yb).sum())
    return correct / len(y) if len(y) else math.nan
