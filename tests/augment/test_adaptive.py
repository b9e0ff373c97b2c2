from __future__ import annotations

import math

import pytest
import torch

from autoaug.augment.adaptive import AugNet, AugNetController, FeedbackController, controller_for
from autoaug.augment.policy import Policy
from autoaug.augment.presets import PRESETS
from autoaug.augment.schedule import Schedule
from autoaug.data.datasets import DEFAULT_DATASET, load_dataset
from autoaug.train.trainer import TrainConfig, Trainer, train


def _feedback(**params: float) -> FeedbackController:
    return FeedbackController(Policy(ops=PRESETS["feedback"].ops, schedule=Schedule("feedback", params)))


def test_feedback_raises_on_steady_decrease_and_lowers_on_stagnation() -> None:
    ctl = _feedback(start=0.0, window=2, tol=0.01, up=0.25, down=0.5)
    losses = [1.0, 0.9, 0.8,   # two falls > 1 %: up (fresh window from 0.8)
              0.7, 0.6,        # two more: up
              0.6, 0.61,       # stalled over the window: down
              0.5, 0.55,       # fell then rose, -8 % over the window: neither steady nor stalled, hold
              0.56]            # window 0.5 -> 0.56 rose: down
    actions = [ctl.decide(epoch, loss).action for epoch, loss in enumerate(losses, 1)]
    assert actions == [0, 0, 1, 0, 1, 0, -1, 0, 0, -1]
    assert [d.level for d in ctl.decisions] == [0, 0, 0.25, 0.25, 0.5, 0.5, 0.0, 0.0, 0.0, 0.0]
    assert ctl.decisions[2].signal == pytest.approx(-0.2)
    assert ctl.current(0.5) == (ctl.policy, 0.0)


def test_feedback_level_stays_in_unit_range_and_ignores_nan() -> None:
    ctl = _feedback(start=0.9, window=1, tol=0.0, up=0.5, down=0.5)
    assert ctl.decide(1, float("nan")).action == 0 and ctl.losses == []
    for epoch, loss in enumerate([1.0, 0.5, 0.25], 2):
        ctl.decide(epoch, loss)
    assert ctl.level == 1.0
    for epoch, loss in enumerate([0.3, 0.4, 0.5], 5):
        ctl.decide(epoch, loss)
    assert ctl.level == 0.0


def test_augnet_shapes_bounds_and_learning() -> None:
    policy = PRESETS["augnet"]
    ctl = AugNetController(policy, seed=0)
    assert ctl.net(torch.zeros(4, 5 + 2 * len(policy.ops))).shape == (4, 2 * len(policy.ops))
    assert sum(p.numel() for p in AugNet(15, 5).parameters()) == 15 * 64 + 64 + 64 * 32 + 32 + 32 * 10 + 10
    for _ in range(20):
        ctl.pending = ctl.draw()
        drawn, _ = ctl.current(0.3)
        for name, cfg in drawn.ops.items():  # never above the policy's own magnitude and probability
            own = policy.ops[name]
            assert 0 <= cfg.magnitude <= own.magnitude and 0 <= cfg.probability <= own.probability
    before = [p.detach().clone() for p in ctl.net.parameters()]
    ctl.learn(0.5)
    assert any(not torch.equal(a, b) for a, b in zip(before, ctl.net.parameters(), strict=True))


def test_augnet_draws_are_seeded() -> None:
    a, b = AugNetController(PRESETS["augnet"], seed=3), AugNetController(PRESETS["augnet"], seed=3)
    a.draw(), b.draw()
    assert torch.equal(a.fractions, b.fractions)


@pytest.fixture(scope="module")
def data():
    return load_dataset(DEFAULT_DATASET, train_size=1200, val_size=300, seed=0)


def test_training_with_feedback_logs_every_decision(data) -> None:
    policy = Policy(ops=PRESETS["feedback"].ops, schedule=Schedule("feedback", {"window": 1, "tol": 0.0}))
    result = train(TrainConfig(model="smallcnn", epochs=4, batch_size=100), data, policy)
    levels = [m["feedback/level"] for m in result.history]
    assert all(k in m for m in result.history for k in ("feedback/signal", "feedback/action", "control_seconds"))
    # the logged factor of an epoch is the level decided after the one before it
    assert [m["magnitude"] for m in result.history] == [0.0, *levels[:-1]]
    assert result.history[1]["magnitude/crop"] == pytest.approx(0.5)  # own constant schedule: never scaled
    rotate = PRESETS["feedback"].ops["rotate"].magnitude
    assert result.history[1]["magnitude/rotate"] == pytest.approx(levels[0] * rotate)


def test_feedback_every_n_batches_decides_within_epochs(data) -> None:
    policy = Policy(ops=PRESETS["feedback"].ops,
                    schedule=Schedule("feedback", {"window": 1, "tol": 0.0, "every": 3, "start": 0.5}))
    trainer = Trainer(TrainConfig(model="smallcnn", epochs=2, batch_size=100), data, policy)
    ctl = trainer.controller
    assert ctl.val[0].shape == (len(data.val_y), 1, 28, 28) and ctl.val[0].dtype == torch.float32
    history = [trainer.run_epoch() for _ in range(2)]
    steps = trainer.batches.steps * 2
    assert [d.at for d in ctl.decisions] == list(range(3, steps + 1, 3))  # a reading every 3 batches
    assert sum(d.action != 0 for d in ctl.decisions) > 0  # window 1, tol 0: every reading after the first acts
    for m in history:
        assert m["feedback/ups"] + m["feedback/downs"] <= trainer.batches.steps // 3 + 1
    assert history[-1]["feedback/level"] == ctl.decisions[-1].level == ctl.level
    trainer.model.train()
    ctl.after_step(trainer.model, 3 * 100)
    assert trainer.model.training and ctl.decisions[-1].at == 300  # a reading leaves the model training


def test_training_with_augnet_holds_out_images_and_logs_its_outputs(data) -> None:
    policy = Policy(ops=PRESETS["augnet"].ops, schedule=Schedule("augnet", {"segment": 2, "holdout": 100}))
    trainer = Trainer(TrainConfig(model="smallcnn", epochs=2, batch_size=100), data, policy)
    assert len(trainer.batches.y) == len(data.train_y) - 100 and trainer.batches.steps == 11
    first = [p.detach().clone() for p in trainer.controller.net.parameters()]
    m = trainer.run_epoch()
    for op, cfg in policy.ops.items():
        assert 0 <= m[f"probability/{op}"] <= cfg.probability
    assert m["magnitude/rotate"] <= policy.ops["rotate"].magnitude and m["control_seconds"] > 0
    assert math.isfinite(m["augnet/reward"])  # four rewards in 11 steps with segment 2: not NaN
    assert any(not torch.equal(a, b) for a, b in zip(first, trainer.controller.net.parameters(), strict=True))
    with pytest.raises(Exception, match="cannot be checkpointed"):
        trainer.state_dict()


def test_parametric_policies_have_no_controller() -> None:
    assert controller_for(PRESETS["baseline"], 0) is None
