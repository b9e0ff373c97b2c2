from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from autoaug.errors import AutoaugError
from autoaug.policy import PRESETS
from autoaug.search_space import SPACES_DIR, load_space
from autoaug.train import TrainConfig
from autoaug.tune import _searcher


@pytest.mark.parametrize("name", sorted(p.stem for p in SPACES_DIR.glob("*.yaml")))
def test_shipped_spaces_load_and_sample_valid_policies(name: str) -> None:
    space = load_space(name)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(5):
        trial = study.ask()
        policy = space.to_policy(space.suggest(trial))
        assert set(policy.ops) <= set(space.ops)


def test_dataset_files_hold_only_differences() -> None:
    assert "solarize" in load_space("default").ops and "solarize" not in load_space("fashion_mnist").ops
    assert "hflip" not in load_space("mnist").ops
    assert load_space("fashion_mnist_small").ops == load_space("fashion_mnist").ops


def test_presets_are_points_of_the_space() -> None:
    space = load_space("default")
    for preset in ("none", "baseline"):
        point = space.point(PRESETS[preset])
        assert point is not None
        assert space.to_policy(point).ops == PRESETS[preset].ops


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ops: {spin: {probability: [0, 1]}}", "ops.spin: unknown op 'spin'"),
        ("ops: {rotate: {magnitude: [0.5, 2.0]}}", "ops.rotate.magnitude: [0.5, 2.0] is not a range"),
        ("ops: {hflip: {magnitude: [0, 1]}}", "ops.hflip.magnitude: 'hflip' has no magnitude"),
        ("ops: {rotate: {prob: [0, 1]}}", "ops.rotate: unknown key 'prob'"),
        ("ops: {rotate: {}}\nschedule: {kinds: [zigzag]}", "schedule.kinds"),
        ("ops: [rotate", "malformed YAML"),
        ("opps: {}", "unknown key 'opps'"),
        ("ops: {rotate: {}}\ntrain: {momentum: [0.5, 0.9]}", "train.momentum: unknown hyper-parameter"),
        ("ops: {rotate: {}}\ntrain: {lr: [0, 0.1]}", "train.lr: [0, 0.1] is not a range"),
    ],
)
def test_bad_spaces_name_file_key_and_value(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(text)
    with pytest.raises(AutoaugError) as err:
        load_space(str(path))
    assert "mine.yaml" in str(err.value) and message in str(err.value)


def test_unknown_space_name() -> None:
    with pytest.raises(AutoaugError, match="unknown search space 'fancy'; choose from: default"):
        load_space("fancy")


def _samples(seed: int) -> list[dict]:
    searcher = _searcher(load_space("default"), seed=seed, base=TrainConfig(epochs=3), trials=5)
    return [searcher.suggest(f"t{i}") for i in range(5)]


def test_same_seed_same_optuna_samples_and_presets_first() -> None:
    a, b, c = _samples(0), _samples(0), _samples(1)
    assert a == b and a[2:] != c[2:]
    space = load_space("default")
    assert space.to_policy(a[0]).ops == PRESETS["none"].ops
    assert space.to_policy(a[1]).ops == PRESETS["baseline"].ops


def test_train_hyper_parameters_are_searched_log_uniform(tmp_path: Path) -> None:
    path = tmp_path / "lr.yaml"
    path.write_text("extends: default\ntrain: {lr: [1.0e-4, 1.0e-1], weight_decay: [0, 1.0e-3]}\n")
    space = load_space(str(path))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    lrs = []
    for _ in range(200):
        params = space.suggest(study.ask())
        overrides = space.train_overrides(params)
        assert set(overrides) == {"lr", "weight_decay"} and 0 <= overrides["weight_decay"] <= 1e-3
        lrs.append(overrides["lr"])
    assert all(1e-4 <= lr <= 1e-1 for lr in lrs)
    assert 0.15 < sum(lr < 1e-3 for lr in lrs) / len(lrs) < 0.5  # log-uniform: a third below 1e-3
    point = space.point(PRESETS["none"], {"lr": 1e-3, "weight_decay": 0.0})
    assert point is not None and space.train_overrides(point) == {"lr": 1e-3, "weight_decay": 0.0}
    assert space.point(PRESETS["none"], {"lr": 1.0, "weight_decay": 0.0}) is None  # outside the lr range
