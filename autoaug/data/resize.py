"""Images of any size to one square size: the shorter side scaled to ``size`` (antialiased), then the centre
``size x size`` crop, done once when the data is decoded (and cached at that size)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from autoaug.errors import AutoaugError

DEFAULT_IMAGE_SIZE = 64  # what a folder of mixed sizes becomes when no size is given
IMAGE_SIZES = (8, 1024)  # the sizes allowed


def check_image_size(size: Any) -> int | None:
    """``size`` as given (``None``: the images' own size), or a one-line error naming it and the allowed range."""
    low, high = IMAGE_SIZES
    if size is None:
        return None
    if isinstance(size, bool) or not isinstance(size, int) or not low <= size <= high:
        raise AutoaugError(f"image size {size!r} is out of range; allowed: {low} to {high} pixels (a side)")
    return size


def fit_pil(image: Any, size: int) -> Any:
    """A PIL image scaled (shorter side to ``size``, antialiased) and centre-cropped to ``size x size``."""
    from PIL import Image, ImageOps

    return ImageOps.fit(image, (size, size), method=Image.Resampling.BICUBIC, centering=(0.5, 0.5))


def fit_tensor(images: torch.Tensor, size: int) -> torch.Tensor:
    """``uint8 [N, C, H, W]`` scaled (shorter side to ``size``, antialiased) and centre-cropped to
    ``[N, C, size, size]``; in chunks, so that a large set is not widened to float at once."""
    h, w = images.shape[-2:]
    if (h, w) == (size, size):
        return images
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    top, left = (nh - size) // 2, (nw - size) // 2
    out = []
    for chunk in images.split(1024):
        x = F.interpolate(chunk.float(), size=(nh, nw), mode="bilinear", antialias=True, align_corners=False)
        out.append(x[..., top : top + size, left : left + size].round().clamp(0, 255).to(torch.uint8))
    return torch.cat(out)


def mixed_sizes_note(sizes: Sequence[tuple[int, int]], size: int) -> str:
    """The one line that says a set of mixed ``(width, height)`` sizes was made ``size x size``."""
    small, large = min(sizes, key=lambda s: s[0] * s[1]), max(sizes, key=lambda s: s[0] * s[1])
    return (f"images of mixed sizes ({small[0]}x{small[1]} to {large[0]}x{large[1]}) resized to {size}x{size} "
            "(shorter side, then centre crop); choose the size with --image-size")
