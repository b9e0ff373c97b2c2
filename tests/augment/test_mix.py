"""MixUp and CutMix: batched on the device, per-batch share, per-image boxes, soft targets, no host sync."""

from __future__ import annotations

import random

import pytest
import torch
from test_sync_free import SyncRecorder

from autoaug.augment.mix import cutmix, mix_batch, mixup
from autoaug.augment.policy import Mix, Policy
from autoaug.augment.presets import PRESETS
from autoaug.errors import AutoaugError


def _batch(b: int = 8, k: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """Image ``i`` is flat at level ``i / b``; its label ``i % k``."""
    x = (torch.arange(b, dtype=torch.float32) / b).view(b, 1, 1, 1).expand(b, 3, 16, 16).contiguous()
    return x, torch.nn.functional.one_hot(torch.arange(b) % k, k).float()


def test_mixup_blends_images_and_targets_alike() -> None:
    x, t = _batch()
    partner = torch.roll(torch.arange(8), 1)
    mixed, soft = mixup(x, t, 0.7, partner)
    assert torch.allclose(mixed, 0.7 * x + 0.3 * x[partner])
    assert torch.allclose(soft, 0.7 * t + 0.3 * t[partner]) and torch.allclose(soft.sum(1), torch.ones(8))


def test_cutmix_pastes_a_box_and_its_targets_say_how_much() -> None:
    x, t = _batch()
    partner = torch.roll(torch.arange(8), 1)
    u = torch.tensor([[0.5, 0.5]] * 4 + [[0.0, 0.0]] * 4)  # centred boxes, and boxes cut at the corner
    mixed, soft = cutmix(x, t, 0.75, partner, u)
    pasted = (mixed != x).all(1).flatten(1).float().mean(1)  # the share of each image from its partner
    assert torch.allclose(pasted[:4], torch.full((4,), 0.25))  # a box of area 1 - lam: 8 x 8 of 16 x 16
    assert torch.allclose(pasted[4:], torch.full((4,), 0.0625))  # cut to a quarter at the corner
    own = 1 - pasted
    assert torch.allclose(soft, own[:, None] * t + (1 - own[:, None]) * t[partner])


def test_a_batch_mixes_with_the_policys_probability_and_a_beta_share() -> None:
    x, labels = torch.rand(64, 3, 8, 8), torch.randint(0, 10, (64,))
    mix, host, generator = Mix("mixup", 0.4, 0.5), random.Random(0), torch.Generator().manual_seed(0)
    shares = []
    for _ in range(400):
        _, soft = mix_batch(x, labels, 10, mix, host, generator)
        top = soft.max(1).values
        shares.append(None if torch.allclose(top, torch.ones(64)) else float(top.min()))
    mixed = [s for s in shares if s is not None]
    assert abs(len(mixed) / 400 - 0.5) < 0.1  # half the batches
    assert sum(s > 0.8 for s in mixed) / len(mixed) > 0.4  # Beta(0.4, 0.4): shares mostly near 0 or 1


@pytest.mark.parametrize("kind", ["mixup", "cutmix"])
def test_mixing_makes_no_host_sync(kind: str) -> None:
    x, labels = torch.rand(64, 3, 32, 32), torch.randint(0, 10, (64,))
    mix, host, generator = Mix(kind, 1.0, 1.0), random.Random(0), torch.Generator().manual_seed(0)
    mix_batch(x, labels, 10, mix, host, generator)
    with SyncRecorder() as recorder:
        for _ in range(3):
            mix_batch(x, labels, 10, mix, host, generator)
    assert recorder.calls == []


def test_mix_round_trips_and_bad_values_are_named() -> None:
    p = PRESETS["cropflip+cutmix"]
    assert Policy.from_dict(p.to_dict()) == p and p.mix == Mix("cutmix", 1.0, 0.5)
    with pytest.raises(AutoaugError, match="unknown mix 'blend'"):
        Mix("blend")
    with pytest.raises(AutoaugError, match="mix alpha 0 is out of range"):
        Mix("mixup", 0)
