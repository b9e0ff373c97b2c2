"""MixUp and CutMix on a whole batch, on its device, with soft targets.

Every image is mixed with a partner from the same batch (a random permutation drawn on the device). The own
image's share ``lam`` is drawn once per batch on the host (no device sync); CutMix's boxes are drawn per image on
the device and each image's share is the part of it left uncovered, so its target matches what it shows.
"""

from __future__ import annotations

import random

import torch
import torch.nn.functional as F

from autoaug.augment.policy import Mix


def draw_lam(mix: Mix, host: random.Random) -> float | None:
    """The own images' share for one batch, from Beta(alpha, alpha), or ``None`` when this batch is not mixed."""
    if host.random() >= mix.probability:
        return None
    return host.betavariate(mix.alpha, mix.alpha)


def mixup(x: torch.Tensor, targets: torch.Tensor, lam: float, partner: torch.Tensor) -> tuple[torch.Tensor,
                                                                                            torch.Tensor]:
    """``lam`` of each image ``x [B, C, H, W]`` and ``1 - lam`` of its ``partner`` (indices ``[B]``); the same blend
    of the soft ``targets [B, K]``."""
    return lam * x + (1 - lam) * x[partner], lam * targets + (1 - lam) * targets[partner]


def cutmix(x: torch.Tensor, targets: torch.Tensor, lam: float, partner: torch.Tensor,
           u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each image ``x [B, C, H, W]`` with a box of its ``partner`` pasted in: a box of area ``1 - lam`` of the image
    (sides in the image's proportions) centred at uniforms ``u [B, 2]`` and cut at the border; the soft ``targets
    [B, K]`` mixed by the share of each image that is its own."""
    _, _, h, w = x.shape
    cut = (1 - lam) ** 0.5
    cy, cx = u[:, 0] * h, u[:, 1] * w
    top, bottom = (cy - cut * h / 2).clamp(0, h), (cy + cut * h / 2).clamp(0, h)
    left, right = (cx - cut * w / 2).clamp(0, w), (cx + cut * w / 2).clamp(0, w)
    rows = torch.arange(h, device=x.device, dtype=x.dtype).view(1, h, 1) + 0.5
    cols = torch.arange(w, device=x.device, dtype=x.dtype).view(1, 1, w) + 0.5
    inside = ((rows >= top.view(-1, 1, 1)) & (rows < bottom.view(-1, 1, 1))
              & (cols >= left.view(-1, 1, 1)) & (cols < right.view(-1, 1, 1)))  # [B, H, W]
    own = 1 - inside.flatten(1).to(x.dtype).mean(1, keepdim=True)  # [B, 1]: the share still the image's own
    return torch.where(inside.unsqueeze(1), x[partner], x), own * targets + (1 - own) * targets[partner]


def mix_batch(x: torch.Tensor, labels: torch.Tensor, num_classes: int, mix: Mix, host: random.Random,
              generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch ``x [B, C, H, W]`` (float in [0, 1]) with ``labels [B]`` mixed as ``mix`` says: images and soft
    targets ``[B, K]`` (one-hot where this batch is not mixed)."""
    targets = F.one_hot(labels, num_classes).to(x.dtype)
    lam = draw_lam(mix, host)
    if lam is None:
        return x, targets
    partner = torch.rand(len(x), generator=generator, device=x.device).argsort()
    if mix.kind == "mixup":
        return mixup(x, targets, lam, partner)
    return cutmix(x, targets, lam, partner, torch.rand(len(x), 2, generator=generator, device=x.device))
