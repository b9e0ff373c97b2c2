"""An epoch's batches: augmented several batches per call where the images are small, one batch per call where an
adaptive controller or a synthetic share needs it, mixed per batch, each real image at most once per epoch."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

import autoaug.train.batches as batches_module
from autoaug.augment.policy import Policy
from autoaug.augment.presets import PRESETS
from autoaug.data.datasets import DatasetSplits
from autoaug.errors import AutoaugError
from autoaug.train.batches import CHUNK_IMAGES, Batches, chunk_batches
from autoaug.train.trainer import TrainConfig, Trainer

N, B, SHAPE = 600, 48, (1, 12, 12)  # 12 batches an epoch


def _images() -> tuple[torch.Tensor, torch.Tensor]:
    """``N`` random uint8 images of ``SHAPE`` and their labels, 10 classes."""
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (N, *SHAPE), dtype=torch.uint8, generator=g), torch.arange(N) % 10


def _batches(policy: str | Policy = "cropflip+randaugment", **kwargs) -> Batches:
    x, y = _images()
    policy = PRESETS[policy] if isinstance(policy, str) else policy
    return Batches(x, y, batch_size=B, num_classes=10, policy=policy, seed=3, device=torch.device("cpu"), **kwargs)


@pytest.mark.parametrize(("batch_size", "shape", "chunk"), [
    (64, (1, 28, 28), 8), (64, (3, 32, 32), 8), (256, (1, 28, 28), 2), (128, (3, 64, 64), 1),
    (32, (3, 224, 224), 1), (CHUNK_IMAGES * 2, (1, 8, 8), 1), (64, (3, 48, 48), 4)])
def test_chunks_hold_up_to_512_images_and_2_million_values(batch_size: int, shape: tuple, chunk: int) -> None:
    assert chunk_batches(batch_size, shape) == chunk


def _record_samples(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, float]]:
    calls: list[tuple[int, float]] = []
    real_sample = batches_module.sample

    def sample(policy, shape, progress, *args, **kwargs):
        calls.append((shape[0], progress))
        return real_sample(policy, shape, progress, *args, **kwargs)

    monkeypatch.setattr(batches_module, "sample", sample)
    return calls


def test_an_epoch_augments_a_chunk_of_batches_per_call_at_its_first_batchs_progress(monkeypatch) -> None:
    calls = _record_samples(monkeypatch)
    batches = _batches(chunk=5)
    out = list(batches.epoch(1, 4))
    assert len(out) == batches.steps == 12
    assert [n for n, _ in calls] == [5 * B, 5 * B, 2 * B]
    assert [p for _, p in calls] == pytest.approx([(1 + first / 12) / 4 for first in (0, 5, 10)])
    assert all(xb.shape == (B, *SHAPE) and yb.shape == (B,) for xb, yb in out)
    assert batches.aug_timer.total() > 0


def test_each_real_image_is_seen_at_most_once_an_epoch_and_augmented_per_image() -> None:
    batches = _batches("trivialaugment")
    images = torch.cat([xb for xb, _ in batches.epoch(0, 1)])
    plain = torch.cat([xb for xb, _ in _batches("none", chunk=batches.chunk).epoch(0, 1)])
    assert batches.chunk > 1 and images.shape == plain.shape == (12 * B, *SHAPE)
    assert plain.flatten(1).unique(dim=0).shape[0] == 12 * B  # distinct images, in the same order as augmented
    changed = (images - plain).flatten(1).abs().amax(1) > 0
    assert 0.5 < changed.float().mean() < 1  # TrivialAugment leaves the images it gives identity as they are


def test_chunked_epochs_replay_from_the_same_seed_and_differ_from_another() -> None:
    first, again = _batches(), _batches()
    for (x1, y1), (x2, y2) in zip(first.epoch(0, 2), again.epoch(0, 2), strict=True):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)
    state = first.state_dict()
    later = [xb for xb, _ in first.epoch(1, 2)]
    again.load_state_dict(state)
    assert all(torch.equal(a, b) for a, b in zip(later, (xb for xb, _ in again.epoch(1, 2)), strict=True))


def test_batches_of_a_chunk_are_mixed_one_by_one_with_soft_targets() -> None:
    batches = _batches("cropflip+cutmix", chunk=4)
    out = list(batches.epoch(0, 1))
    assert all(yb.shape == (B, 10) and torch.allclose(yb.sum(1), torch.ones(B)) for _, yb in out)
    shares = {round(yb.max(1).values.min().item(), 4) for _, yb in out}
    assert len(shares) > 1  # each batch its own lam


class _Fixed:
    """The smallest adaptive controller: a fixed policy and factor."""

    holdout = validation = 0

    def current(self, progress: float) -> tuple[Policy, float | None]:
        return PRESETS["randaugment"], 0.5


def test_a_controller_takes_one_batch_per_call(monkeypatch) -> None:
    calls = _record_samples(monkeypatch)
    batches = _batches(controller=_Fixed())
    assert batches.chunk == 1
    list(batches.epoch(0, 1))
    assert [n for n, _ in calls] == [B] * 12


def test_the_training_config_sets_the_chunk_and_rejects_a_bad_one() -> None:
    x, y = _images()
    data = DatasetSplits("t", tuple(map(str, range(10))), x, y, x[:B], y[:B], x[:B], y[:B])
    config = TrainConfig(model="smallcnn", epochs=1, batch_size=B)
    assert Trainer(config, data, "cropflip").batches.chunk == chunk_batches(B, SHAPE) > 3
    assert Trainer(replace(config, aug_chunk=3), data, "cropflip").batches.chunk == 3
    with pytest.raises(AutoaugError, match="aug_chunk 0 must be a positive integer or None"):
        TrainConfig(aug_chunk=0)
