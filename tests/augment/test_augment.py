from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from autoaug.augment.augmenter import Augmenter, apply, sample
from autoaug.augment.ops import OPS
from autoaug.augment.policy import OpConfig, Policy
from autoaug.augment.presets import PRESETS, resolve_policy
from autoaug.augment.schedule import Schedule
from autoaug.errors import AutoaugError


def _batch(seed: int = 0, shape: tuple[int, ...] = (64, 3, 16, 16)) -> torch.Tensor:
    return torch.randint(0, 256, shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("preset", list(PRESETS))
def test_same_seed_same_batch_different_seed_different(preset: str) -> None:
    x = _batch()
    a, b, c = Augmenter(preset, seed=1), Augmenter(preset, seed=1), Augmenter(preset, seed=2)
    ya, yb, yc = a(x), b(x), c(x)
    assert ya.dtype == torch.uint8 and ya.shape == x.shape
    assert torch.equal(ya, yb)
    if preset != "none":
        assert not torch.equal(ya, yc)
        assert not torch.equal(a(x), ya)  # the generator advances: the next batch gets new parameters


def test_replaying_params_gives_the_same_batch() -> None:
    policy = PRESETS["randaugment"]
    params = sample(policy, (32, 3, 16, 16), 0.5, torch.Generator().manual_seed(3))
    x = _batch(shape=(32, 3, 16, 16)).float() / 255
    assert torch.equal(apply(x, params), apply(x, params))


def test_parameters_are_drawn_per_image() -> None:
    policy = Policy(ops={"rotate": OpConfig(1.0)})
    params = sample(policy, (256, 1, 8, 8), 0.0, torch.Generator().manual_seed(0))
    (name, p), = params.ops
    assert name == "rotate" and len(p.index) == 256
    assert p.magnitude.unique().numel() == 256  # every image its own angle
    frac_negative = (p.magnitude < 0).float().mean().item()
    assert 0.4 < frac_negative < 0.6  # signs balanced
    assert p.magnitude.abs().max() <= 1.0


def test_probability_and_fixed_magnitude() -> None:
    policy = Policy(ops={"invert": OpConfig(0.0, 0.3), "posterize": OpConfig(0.5, 1.0, "fixed")})
    params = dict(sample(policy, (4000, 1, 4, 4), 0.0, torch.Generator().manual_seed(0)).ops)
    assert abs(len(params["invert"].index) / 4000 - 0.3) < 0.03
    assert torch.all(params["posterize"].magnitude == 0.5)


def test_n_ops_draws_exactly_k_distinct_ops_per_image() -> None:
    policy = Policy(ops={n: OpConfig(0.5) for n in ("rotate", "invert", "solarize", "hflip", "contrast")}, n_ops=2)
    params = sample(policy, (1000, 3, 4, 4), 0.0, torch.Generator().manual_seed(0))
    counts = torch.zeros(1000, dtype=torch.long)
    for _, p in params.ops:
        counts[p.index] += 1
    assert torch.all(counts == 2)
    per_op = [len(p.index) for _, p in params.ops]
    assert all(abs(n / 1000 - 2 / 5) < 0.06 for n in per_op)  # uniform choice among the 5 ops


def test_fused_geometric_ops_equal_the_ops_applied_one_by_one(photo: torch.Tensor) -> None:
    x = OPS["gaussian_blur"](photo, torch.full((3,), 0.75))  # smooth, so resampling twice loses little
    rot = OPS["rotate"](x, torch.full((3,), 0.1))
    both = OPS["translate_x"](rot, torch.full((3,), 0.1))
    policy = Policy(ops={"rotate": OpConfig(0.1, 1.0, "fixed"), "translate_x": OpConfig(0.1, 1.0, "fixed")})
    params = sample(policy, x.shape, 0.0, torch.Generator().manual_seed(0))
    params_pos = type(params)(tuple((n, type(p)(p.index, p.magnitude.abs(), p.rand)) for n, p in params.ops))
    fused = apply(x, params_pos)
    inner = (slice(None), slice(None), slice(6, -6), slice(6, -6))  # away from the zero-filled border
    wrong_order = OPS["rotate"](OPS["translate_x"](x, torch.full((3,), 0.1)), torch.full((3,), 0.1))
    error = (fused[inner] - both[inner]).abs().mean()
    assert error < 0.005  # one resampling instead of two
    assert error < (fused[inner] - wrong_order[inner]).abs().mean() / 2


@pytest.mark.parametrize("name", [n for n, s in OPS.items() if s.neutral_at_zero])
def test_an_op_on_most_of_the_batch_runs_over_all_of_it_as_on_its_images_alone(name: str) -> None:
    x = torch.rand(16, 3, 12, 12, generator=torch.Generator().manual_seed(1))
    params = sample(Policy(ops={name: OpConfig(0.6, 0.8)}), x.shape, 0.0, torch.Generator().manual_seed(0))
    (_, p), = params.ops
    assert 8 < p.index.numel() < 16  # the whole-batch path, with 0 for the images the op skips
    expected = x.clone()
    expected[p.index] = OPS[name](x[p.index], p.magnitude, p.rand)
    torch.testing.assert_close(apply(x, params), expected, atol=1e-6, rtol=0)
    few = type(params)(((name, type(p)(p.index[:4], p.magnitude[:4], p.rand[:4])),))  # gathered and scattered
    expected = x.clone()
    expected[p.index[:4]] = OPS[name](x[p.index[:4]], p.magnitude[:4], p.rand[:4])
    torch.testing.assert_close(apply(x, few), expected, atol=1e-6, rtol=0)


def test_float_input_keeps_dtype_and_range() -> None:
    x = _batch().float() / 255
    y = Augmenter("trivialaugment")(x)
    assert y.dtype == torch.float32 and y.min() >= 0 and y.max() <= 1


def test_schedule_scales_magnitudes() -> None:
    linear = Schedule("linear", {"start": 0.0, "end": 1.0})
    policy = Policy(ops={"rotate": OpConfig(1.0, 1.0, "fixed")}, schedule=linear)
    g = torch.Generator().manual_seed(0)
    early = dict(sample(policy, (8, 1, 4, 4), 0.0, g).ops)["rotate"].magnitude.abs()
    late = dict(sample(policy, (8, 1, 4, 4), 0.5, g).ops)["rotate"].magnitude.abs()
    assert torch.all(early == 0) and torch.allclose(late, torch.full((8,), 0.5))
    assert Schedule("cosine", {"start": 0.2, "end": 1.0}).factor(0.0) == pytest.approx(0.2)
    assert Schedule("cosine", {"start": 0.2, "end": 1.0}).factor(1.0) == pytest.approx(1.0)


@pytest.mark.parametrize("preset", list(PRESETS))
def test_policy_json_round_trip(preset: str, tmp_path: Path) -> None:
    policy = PRESETS[preset]
    assert Policy.from_dict(json.loads(policy.to_json())) == policy
    assert Policy.load(policy.save(tmp_path / "p.json")) == policy


def test_baseline_preset_is_the_users_pipeline() -> None:
    b = PRESETS["baseline"]
    assert set(b.ops) == {"rotate", "hflip", "brightness", "zoom", "gaussian_noise"} and b.n_ops is None
    assert OPS["rotate"].value(torch.tensor(b.ops["rotate"].magnitude)).item() == pytest.approx(15.0)
    assert OPS["zoom"].value(torch.tensor(b.ops["zoom"].magnitude)).item() == pytest.approx(0.2)
    assert OPS["brightness"].value(torch.tensor(b.ops["brightness"].magnitude)).item() == pytest.approx(0.2)
    assert OPS["gaussian_noise"].value(torch.tensor(b.ops["gaussian_noise"].magnitude)).item() == pytest.approx(0.1)
    assert b.ops["hflip"].probability == 0.5
    assert PRESETS["randaugment"].n_ops == 2 and PRESETS["trivialaugment"].n_ops == 1


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"ops": {"spin": {"magnitude": 0.5}}}, "unknown op 'spin'"),
        ({"ops": {"rotate": {"magnitude": 1.5}}}, "magnitude 1.5 is outside [0, 1]"),
        ({"ops": {"rotate": {"probability": -0.1}}}, "probability -0.1 is outside [0, 1]"),
        ({"ops": {"rotate": {"sampling": "gauss"}}}, "unknown sampling 'gauss'"),
        ({"ops": {"rotate": {"magnitude": 0.5}}, "n_ops": 3}, "n_ops 3 is out of range"),
        ({"opz": {}}, "unknown policy key 'opz'"),
        ({"schedule": {"kind": "zigzag"}}, "unknown schedule 'zigzag'"),
    ],
)
def test_bad_policy_json_names_the_bad_value(doc: dict, message: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(AutoaugError, match=f"bad.json.*{__import__('re').escape(message)}"):
        Policy.load(path)


def test_unreadable_policy_files(tmp_path: Path) -> None:
    with pytest.raises(AutoaugError, match="does not exist"):
        Policy.load(tmp_path / "missing.json")
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(AutoaugError, match="not valid JSON"):
        Policy.load(tmp_path / "broken.json")
    with pytest.raises(AutoaugError, match="unknown policy 'fancy'"):
        resolve_policy("fancy")
