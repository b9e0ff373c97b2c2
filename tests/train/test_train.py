from __future__ import annotations

import pytest
import torch

from autoaug.data.datasets import DEFAULT_DATASET, load_dataset
from autoaug.errors import AutoaugError
from autoaug.train.models import build_model
from autoaug.train.trainer import TrainConfig, TrainingDiverged, channel_stats, evaluate, train

KEYS = {"epoch", "train_loss", "train_acc", "val_loss", "val_acc", "val_seconds", "lr", "magnitude", "epoch_seconds",
        "aug_seconds",
        "images_per_second", "aug_ms_per_batch", "control_seconds", "synthetic_seconds",
        "synthetic_share"}


@pytest.fixture(scope="module")
def small_data():
    return load_dataset(DEFAULT_DATASET, train_size=2000, val_size=500, seed=0)


@pytest.mark.parametrize("name", ["smallcnn", "lenet5", "timm:resnet18"])
@pytest.mark.parametrize(("channels", "size"), [(1, 28), (3, 32)])
def test_models_take_small_images(name: str, channels: int, size: int) -> None:
    model = build_model(name, channels, 7, size).eval()
    assert model(torch.rand(2, channels, size, size)).shape == (2, 7)


def test_training_learns_and_reports_every_epoch(small_data) -> None:
    reports: list[dict] = []
    result = train(TrainConfig(epochs=2, batch_size=128, seed=0), small_data, "baseline", report=reports.append)
    per_op = {f"magnitude/{op}" for op in ("rotate", "brightness", "zoom", "gaussian_noise")}  # hflip has none
    assert [r["epoch"] for r in reports] == [1, 2] and set(reports[0]) == KEYS | per_op
    assert reports[-1]["aug_ms_per_batch"] > 0 and reports[-1]["lr"] < reports[0]["lr"] + 1e-12
    test = evaluate(result.model, small_data.test_x, small_data.test_y)
    assert test["acc"] > 0.5  # ten classes: chance is 0.1


def test_same_seed_same_run_different_seed_different(small_data) -> None:
    cfg = TrainConfig(epochs=1, batch_size=256, seed=3)
    a = train(cfg, small_data, "randaugment").history[0]
    b = train(cfg, small_data, "randaugment").history[0]
    c = train(TrainConfig(epochs=1, batch_size=256, seed=4), small_data, "randaugment").history[0]
    assert a["train_loss"] == b["train_loss"] and a["val_acc"] == b["val_acc"]
    assert a["train_loss"] != c["train_loss"]


@pytest.mark.parametrize("policy", ["cropflip+mixup", "cropflip+cutmix"])
def test_mixed_batches_train_on_soft_targets(small_data, policy: str) -> None:
    """A mixing policy trains (cross-entropy on soft targets), reproducibly, and learns."""
    cfg = TrainConfig(epochs=2, batch_size=128, seed=0)
    a, b = (train(cfg, small_data, policy) for _ in range(2))
    assert a.history[-1]["train_loss"] == b.history[-1]["train_loss"]
    assert a.history[-1]["train_loss"] != train(cfg, small_data, "cropflip").history[-1]["train_loss"]
    assert evaluate(a.model, small_data.test_x, small_data.test_y)["acc"] > 0.3  # ten classes: chance is 0.1


def test_diverging_training_raises(small_data) -> None:
    with pytest.raises(TrainingDiverged, match="training loss became"):
        train(TrainConfig(epochs=1, optimizer="sgd", lr=1e12, lr_schedule="constant"), small_data, "none")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"model": "resnet"}, "unknown model 'resnet'"),
        ({"optimizer": "lion"}, "unknown optimizer 'lion'"),
        ({"epochs": 0}, "epochs 0 must be a positive integer"),
        ({"lr": -1.0}, "lr -1.0 must be a positive number"),
        ({"device": "tpu"}, "unknown device 'tpu'"),
    ],
)
def test_bad_config_names_the_bad_value(kwargs: dict, message: str) -> None:
    with pytest.raises(AutoaugError, match=message):
        TrainConfig(**kwargs)


def test_channel_stats_match_a_float_copy_without_making_one() -> None:
    x = torch.randint(0, 256, (1000, 3, 8, 8), dtype=torch.uint8)
    mean, std = channel_stats(x, chunk_pixels=7 * 192)  # 7 images per chunk: the last chunk is partial
    pixels = x.float().div(255).transpose(0, 1).reshape(3, -1)
    assert torch.allclose(mean, pixels.mean(1), atol=1e-6) and torch.allclose(std, pixels.std(1), atol=1e-6)


def test_warmup_rises_linearly_then_follows_the_schedule() -> None:
    from autoaug.train.trainer import lr_factor

    total, warmup = 100, 10
    rates = [lr_factor(s, total, warmup, cosine=True) for s in range(total)]
    assert rates[:warmup] == pytest.approx([(s + 1) / warmup for s in range(warmup)])
    assert rates[warmup] == 1.0 and all(a >= b for a, b in zip(rates[warmup:], rates[warmup + 1 :], strict=False))
    assert rates[-1] < 0.01
    assert [lr_factor(s, total, 0, cosine=True) for s in (0, 50)] == pytest.approx([1.0, 0.5])  # cosine as before
    assert {lr_factor(s, total, warmup, cosine=False) for s in range(warmup, total)} == {1.0}
    with pytest.raises(AutoaugError, match=r"warmup 1\.5 must be a share of the steps"):
        TrainConfig(warmup=1.5)
