from __future__ import annotations

import collections
from pathlib import Path

import optuna
import pytest
import torch

from autoaug.augment.ops import OPS
from autoaug.augment.policy import OpConfig, Policy
from autoaug.augment.presets import BASES, GROUPS, PRESETS, layered
from autoaug.errors import AutoaugError
from autoaug.search.experiment import preset_points
from autoaug.search.hooks import searcher
from autoaug.search.settings import space_for_dataset
from autoaug.search.space import SPACES_DIR, load_space
from autoaug.train.trainer import TrainConfig

REPORTS = Path(__file__).resolve().parents[2] / "reports"


@pytest.mark.parametrize("name", sorted(p.stem for p in SPACES_DIR.glob("*.yaml")))
def test_shipped_spaces_load_and_sample_valid_policies(name: str) -> None:
    space = load_space(name)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(5):
        trial = study.ask()
        policy = space.to_policy(space.suggest(trial))
        if space.layer is None:
            assert set(policy.ops) <= set(space.ops) and not policy.base
        else:
            allowed = {"identity", *(op for g in space.layer.groups for op in GROUPS[g])}
            assert set(policy.ops) <= allowed and (policy.n_ops or 0) <= space.layer.n_ops[1]
            base = {k: v for k, v in policy.base.items() if not (space.layer.cutout and k == "cutout")}
            assert any(base == BASES[b] for b in space.layer.bases)


def test_dataset_files_hold_only_differences() -> None:
    assert "solarize" in load_space("per_op").ops and "solarize" not in load_space("fashion_mnist_per_op").ops
    assert load_space("mnist").layer.bases == ("none", "crop") == load_space("svhn").layer.bases
    assert load_space("mnist").layer.groups == load_space("default").layer.groups
    assert space_for_dataset("fashion_mnist", (1, 28, 28)) == space_for_dataset("cifar10", (3, 32, 32)) == "default"
    assert space_for_dataset("imagefolder:pets", (3, 64, 64)) == "photos" == space_for_dataset("cifar10", (3, 96, 96))
    assert space_for_dataset("mnist", (1, 28, 28)) == "mnist"  # the dataset's own space


@pytest.mark.parametrize("preset", ["none", "cropflip", "randaugment", "trivialaugment", "cropflip+randaugment",
                                    "cropflip+trivialaugment"])
def test_standards_are_exact_points_of_the_default_space(preset: str) -> None:
    space = load_space("default")
    point = space.point(PRESETS[preset])
    assert point is not None
    assert space.to_policy(point, name=preset) == PRESETS[preset]


@pytest.mark.parametrize("preset", ["none", "cropflip", "rrcflip", "rrcflip+randaugment", "rrcflip+trivialaugment",
                                    "randaugment"])
def test_photo_standards_are_exact_points_of_the_photos_space(preset: str) -> None:
    space = load_space("photos")
    point = space.point(PRESETS[preset])
    assert point is not None and space.to_policy(point, name=preset) == PRESETS[preset]


def test_the_wide_space_has_cutout_group_magnitudes_and_mixing_and_holds_the_standards() -> None:
    space = load_space("wide")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    points = [space.suggest(study.ask()) for _ in range(60)]
    policies = [space.to_policy(p) for p in points]
    kinds = collections.Counter(p.mix.kind if p.mix else "none" for p in policies)
    assert set(kinds) == {"none", "mixup", "cutmix"}
    assert all(0.2 <= p.mix.alpha <= 2.0 and 0.5 <= p.mix.probability <= 1.0 for p in policies if p.mix)
    assert {"magnitude.geometric", "magnitude.color"} <= set(points[0]) and "magnitude" not in points[0]
    params = {**points[0], "n_ops": 2, "style": "randaugment", "magnitude.geometric": 0.2, "magnitude.color": 0.8}
    own = space.to_policy(params)
    low, high = layered(n_ops=2, magnitude=0.2), layered(n_ops=2, magnitude=0.8)  # each group at its own magnitude
    assert own.ops["rotate"].magnitude == low.ops["rotate"].magnitude
    assert own.ops["brightness"].magnitude == high.ops["brightness"].magnitude
    sizes = [p.base["cutout"].magnitude for p in policies if "cutout" in p.base]
    assert len(sizes) == 60 and all(0.25 <= m <= 1.0 for m in sizes)  # searched (left out at probability 0)
    assert "cutout" not in space.to_policy({**points[0], "cutout.probability": 0.0}).base
    for preset in ("cropflip+mixup", "cropflip+cutmix", "cropflip+cutout", "cropflip", "none", "randaugment",
                   "cropflip+trivialaugment"):
        point = space.point(PRESETS[preset])
        assert point is not None and space.to_policy(point, name=preset) == PRESETS[preset], preset
    assert load_space("default").point(PRESETS["cropflip+mixup"]) is None  # the default space does not mix


def test_autoaugment_is_no_point_of_any_space() -> None:
    for name in ("default", "photos", "per_op"):
        assert load_space(name).point(PRESETS["autoaugment"]) is None
        assert load_space(name).point(PRESETS["cropflip+autoaugment"]) is None


def test_per_op_space_holds_the_old_presets_and_not_the_layered_ones() -> None:
    space = load_space("per_op")
    assert space.to_policy(space.point(PRESETS["baseline"])).ops == PRESETS["baseline"].ops
    assert space.point(PRESETS["cropflip"]) is None and space.point(PRESETS["randaugment"]) is None
    assert load_space("default").point(PRESETS["baseline"]) is None


def test_prior_covers_zero_to_three_ops_per_image_evenly() -> None:
    space = load_space("default")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    counts = collections.Counter(space.to_policy(space.suggest(study.ask())).n_ops or 0 for _ in range(800))
    assert sorted(counts) == [0, 1, 2, 3] and all(150 < c < 250 for c in counts.values())


def test_layered_policy_applies_its_groups_and_magnitude() -> None:
    policy = layered("crop", 2, 0.5, "trivialaugment", {"geometric": 0.25})
    assert set(policy.ops) == {"identity", *GROUPS["geometric"]} and policy.n_ops == 2
    assert policy.ops["rotate"] == OpConfig(0.5, 0.25, "uniform") and policy.ops["identity"].probability == 1.0
    assert policy.base == BASES["crop"]
    rand = layered(n_ops=1, magnitude=1.0)  # randaugment style: its ranges at M = 30, fixed
    assert OPS["rotate"].value(torch.tensor(rand.ops["rotate"].magnitude)) == pytest.approx(30.0)
    assert rand.ops["brightness"].sampling == "fixed"


def test_old_policy_files_still_load() -> None:
    old = Policy.load(REPORTS / "end-to-end/before-3885386/reports/fashion_mnist_small-20261202-034533/policies/"
                                "randaugment.json")
    assert old.n_ops == 2 and not old.base
    assert set(old.ops) == set(PRESETS["randaugment"].ops)
    for op, cfg in old.ops.items():  # the same physical values (posterize drops a whole number of bits)
        old_value, new_value = (OPS[op].value(torch.tensor(c.magnitude)).item()
                                for c in (cfg, PRESETS["randaugment"].ops[op]))
        if op == "posterize":
            assert round(old_value) == round(new_value)
        else:
            assert old_value == pytest.approx(new_value, rel=1e-3, abs=1e-4)  # old files rounded to 4 places


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
        ("layer: {n_ops: [0, 5]}", "layer.n_ops: [0, 5] is not a range"),
        ("layer: {bases: [mirror]}", "layer.bases: ['mirror'] must list some of none, crop, cropflip"),
        ("layer: {groups: {shape: [0, 1]}}", "layer.groups"),
        ("layer: {styles: []}", "layer.styles"),
        ("layer: {}\nops: {rotate: {}}", "give 'layer' (the compact space) or 'ops'"),
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


def _samples(seed: int, image_shape: tuple[int, ...] = (3, 32, 32)) -> list[dict]:
    space = load_space("default")
    points = list(preset_points(space, TrainConfig(epochs=3), image_shape).values())
    tpe = searcher(space, seed=seed, points=points, epochs=3)
    return [tpe.suggest(f"t{i}") for i in range(8)]


@pytest.mark.parametrize(("shape", "first"), [
    ((3, 32, 32), ("none", "cropflip", "randaugment", "trivialaugment", "cropflip+randaugment",
                   "cropflip+trivialaugment")),  # AutoAugment and Cutout are not points of the default space
    ((1, 28, 28), ("none", "cropflip", "randaugment", "trivialaugment", "cropflip+randaugment",
                   "cropflip+trivialaugment"))])
def test_same_seed_same_optuna_samples_and_standards_first(shape: tuple[int, ...], first: tuple[str, ...]) -> None:
    a, b, c = _samples(0, shape), _samples(0, shape), _samples(1, shape)
    n = len(first)
    assert a == b and a[n:] != c[n:]
    space = load_space("default")
    assert [space.to_policy(p, name=name) for p, name in zip(a, first, strict=False)] == [PRESETS[f] for f in first]


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
