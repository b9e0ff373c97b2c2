"""Precision and memory format: what ``auto`` resolves to, and that a run computes as it says."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from autoaug.data.datasets import DEFAULT_DATASET, load_dataset
from autoaug.errors import AutoaugError
from autoaug.search.budgets import val_every
from autoaug.train.precision import Compute, cpu_has_fast_bf16, resolve_precision
from autoaug.train.trainer import TrainConfig, Trainer, evaluate, train


@pytest.fixture(scope="module")
def data():
    return load_dataset(DEFAULT_DATASET, train_size=600, val_size=200, seed=0)


def test_auto_follows_the_cpu_flags() -> None:
    flags = Path("/proc/cpuinfo").read_text().split()
    native = ("amx_bf16" in flags or "avx512_bf16" in flags) and torch.backends.mkldnn.is_available()
    assert cpu_has_fast_bf16() == native
    assert resolve_precision("auto", torch.device("cpu")).name == ("bf16" if native else "fp32")
    assert resolve_precision("fp32", torch.device("cpu")).dtype is None
    assert resolve_precision("bf16", torch.device("cpu")).dtype == torch.bfloat16


def test_bad_precisions_name_the_value() -> None:
    with pytest.raises(AutoaugError, match="unknown precision 'fp64'"):
        TrainConfig(precision="fp64")
    with pytest.raises(AutoaugError, match="precision 'fp16' needs a CUDA device"):
        resolve_precision("fp16", torch.device("cpu"))
    with pytest.raises(AutoaugError, match="val_every 0 must be a positive integer"):
        TrainConfig(val_every=0)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_the_model_computes_in_its_precision_and_returns_float32(data, precision: str) -> None:
    trainer = Trainer(TrainConfig(model="convnet", epochs=1, batch_size=64, precision=precision), data, "none")
    model = trainer.model
    assert isinstance(model, Compute) and model.channels_last
    inner: list[torch.dtype] = []
    conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    conv.register_forward_hook(lambda _m, _i, out: inner.append(out.dtype))
    logits = model(torch.rand(4, 1, 28, 28))
    assert logits.dtype == torch.float32
    assert inner == [torch.bfloat16 if precision == "bf16" else torch.float32]
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)


def test_bf16_and_fp32_runs_learn_alike(data) -> None:
    """One epoch from the same initialization and batches: the bfloat16 run's losses stay close to float32's."""
    runs = {p: train(TrainConfig(model="smallcnn", epochs=2, batch_size=64, precision=p), data, "none")
            for p in ("fp32", "bf16")}
    assert runs["bf16"].precision == "bf16" and runs["fp32"].precision == "fp32"
    a, b = (runs[p].history[-1]["train_loss"] for p in ("fp32", "bf16"))
    assert abs(a - b) < 0.1 * a
    acc = {p: evaluate(r.model, data.val_x, data.val_y)["acc"] for p, r in runs.items()}
    assert abs(acc["fp32"] - acc["bf16"]) < 0.08


def test_validation_runs_about_ten_times_and_after_the_last_epoch(data) -> None:
    cfg = TrainConfig(epochs=30)
    assert [e for e in range(1, 31) if cfg.validates(e)] == list(range(3, 31, 3))
    cfg = TrainConfig(epochs=7, val_every=3)
    assert [e for e in range(1, 8) if cfg.validates(e)] == [3, 6, 7]
    history = train(TrainConfig(model="smallcnn", epochs=3, batch_size=128, val_every=2), data, "none").history
    assert ["val_acc" in m for m in history] == [False, True, True]
    assert all(m["epoch_seconds"] >= m.get("val_seconds", 0) > -1 for m in history)


@pytest.mark.parametrize(("grace", "epochs", "every"), [(10, 30, 2), (10, 40, 2), (15, 60, 5), (1, 2, 1), (6, 6, 1)])
def test_search_validates_on_every_asha_rung(grace: int, epochs: int, every: int) -> None:
    assert val_every(grace, epochs) == every
    rungs = [grace * 3**k for k in range(5) if grace * 3**k <= epochs]
    assert all(r % every == 0 for r in rungs)
