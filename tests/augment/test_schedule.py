from __future__ import annotations

import math
from pathlib import Path

import optuna
import pytest
import torch

from autoaug.augment.augmenter import Augmenter
from autoaug.augment.policy import OpConfig, Policy, Stage
from autoaug.augment.schedule import Schedule
from autoaug.errors import AutoaugError
from autoaug.search.space import load_space


@pytest.mark.parametrize(
    ("kind", "params", "expected"),
    [
        ("constant", {}, [1.0, 1.0, 1.0, 1.0]),
        ("linear", {"start": 0.2, "end": 1.0}, [0.2, 0.4, 0.6, 1.0]),
        ("cosine", {"start": 0.0, "end": 1.0}, [0.0, 0.5 * (1 - math.cos(math.pi / 4)), 0.5, 1.0]),
        ("step", {"start": 0.1, "end": 0.9, "at": 0.5}, [0.1, 0.1, 0.9, 0.9]),
        ("warmup", {"warmup": 0.5}, [0.0, 0.5, 1.0, 1.0]),
    ],
)
def test_parametric_schedule_values(kind: str, params: dict, expected: list[float]) -> None:
    """Factor at progress 0, 1/4, 1/2 and 1."""
    s = Schedule(kind, params)
    assert [s.factor(p) for p in (0.0, 0.25, 0.5, 1.0)] == pytest.approx(expected)
    assert s.factor(-1.0) == pytest.approx(expected[0]) and s.factor(2.0) == pytest.approx(expected[-1])
    assert Schedule.from_dict(s.to_dict()) == s


@pytest.mark.parametrize(
    ("kind", "params", "message"),
    [
        ("zigzag", {}, "unknown schedule 'zigzag'"),
        ("step", {"at": 1.5}, "at=1.5 must be a number in [0, 1]"),
        ("warmup", {"start": 0.1}, "has no parameter 'start'"),
        ("feedback", {"window": 2.5}, "window=2.5 must be an integer in [1, 10]"),
        ("augnet", {"sigma": "big"}, "sigma='big'"),
    ],
)
def test_bad_schedules_name_the_value(kind: str, params: dict, message: str) -> None:
    with pytest.raises(AutoaugError, match=message.replace("[", r"\[").replace("(", r"\(")):
        Schedule(kind, params)


def test_adaptive_schedules_get_defaults_and_cannot_be_per_op() -> None:
    s = Schedule("feedback", {"window": 3})
    assert s.adaptive and s.params["window"] == 3 and s.params["start"] == 0.0
    with pytest.raises(AutoaugError, match="must be parametric"):
        OpConfig(0.5, 1.0, schedule=Schedule("augnet"))


def test_per_op_schedule_overrides_the_policy_schedule_and_round_trips() -> None:
    policy = Policy(ops={"rotate": OpConfig(0.8, 1.0, "fixed", Schedule("linear", {"start": 0.0, "end": 1.0})),
                         "brightness": OpConfig(0.4, 1.0, "fixed")},
                    schedule=Schedule("step", {"start": 0.5, "end": 1.0, "at": 0.5}))
    assert policy.magnitudes(0.25) == pytest.approx({"rotate": 0.2, "brightness": 0.2})
    assert policy.magnitudes(0.75) == pytest.approx({"rotate": 0.6, "brightness": 0.4})
    assert policy.magnitudes(0.75, factor=0.0) == pytest.approx({"rotate": 0.6, "brightness": 0.0})
    assert Policy.from_dict(policy.to_dict()) == policy
    params = Augmenter(policy).sample((64, 1, 8, 8), progress=0.25)
    mags = {name: p.magnitude.abs() for name, p in params.ops}
    assert torch.allclose(mags["rotate"], torch.tensor(0.2)) and torch.allclose(mags["brightness"], torch.tensor(0.2))


def test_stages_replace_ops_from_their_start() -> None:
    first = {"rotate": OpConfig(0.1, 1.0, "fixed")}
    later = {"rotate": OpConfig(0.5, 0.5, "fixed"), "hflip": OpConfig(0.0, 1.0)}
    policy = Policy(ops=first, stages=(Stage(0.5, later),))
    assert policy.at(0.49).ops == Policy(ops=first).ops
    assert policy.at(0.5).ops == Policy(ops=later).ops and not policy.at(0.5).stages
    assert Policy.from_dict(policy.to_dict()) == policy
    with pytest.raises(AutoaugError, match="must increase"):
        Policy(ops=first, stages=(Stage(0.5, later), Stage(0.5, first)))
    with pytest.raises(AutoaugError, match="'stages' must be a list"):
        Policy.from_dict({"ops": {}, "stages": [{"begin": 0.5}]})


def test_space_searches_new_kinds_and_per_op_schedules(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("ops: {rotate: {}, hflip: {}, brightness: {}}\n"
                    "schedule: {kinds: [step, warmup, feedback], per_op: true, window: [2, 4]}\n")
    space = load_space(str(path))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(30):
        params = space.suggest(study.ask())
        policy = space.to_policy(params)
        seen.add(params["schedule"])
        if params["schedule"] == "feedback":
            assert policy.schedule.kind == "feedback" and 2 <= policy.schedule.params["window"] <= 4
            assert isinstance(params["schedule.window"], int)
        else:  # per op: every op with a magnitude has its own schedule of the sampled kind
            assert policy.schedule.kind == "constant" and "schedule.window" not in params
            for op in ("rotate", "brightness"):
                if op in policy.ops:
                    assert policy.ops[op].schedule.kind == params["schedule"]
            assert "hflip" not in policy.ops or policy.ops["hflip"].schedule is None
    assert seen == {"step", "warmup", "feedback"}


def test_space_rejects_out_of_range_schedule_parameters(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("ops: {rotate: {}}\nschedule: {kinds: [feedback], window: [0, 40]}\n")
    with pytest.raises(AutoaugError, match=r"schedule.window: \[0, 40\] is not a range \[low, high\] within \[1, 10\]"):
        load_space(str(path))
