from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from autoaug.augment.policy import OpConfig, Policy
from autoaug.data.datasets import DEFAULT_DATASET, load_dataset
from autoaug.search.pbt import STATE_FILE, replay_policy
from autoaug.train.trainer import TrainConfig, Trainer


def test_replayed_stages_reproduce_a_run_that_changed_policy_midway() -> None:
    """Train 2 epochs with A, checkpoint, resume with B for 2 more (what PBT does); the exported policy,
    trained from scratch with the same seed, gives the same magnitudes, the same batches and the same model."""
    data = load_dataset(DEFAULT_DATASET, train_size=600, val_size=200, seed=0)
    cfg = TrainConfig(model="smallcnn", epochs=4, batch_size=100, seed=5)
    a = Policy(ops={"rotate": OpConfig(0.1, 0.5), "hflip": OpConfig(0.0, 0.5)})
    b = Policy(ops={"rotate": OpConfig(0.2, 0.8), "brightness": OpConfig(0.3, 1.0, "fixed")})
    first = Trainer(cfg, data, a)
    first.run_epoch(), first.run_epoch()
    state = first.state_dict()  # as PBT's checkpoint, right after the epoch
    second = Trainer(cfg, data, b)
    second.load_state_dict(state)
    second.run_epoch(), second.run_epoch()
    replay = replay_policy([(0, a.to_dict()["ops"]), (2, b.to_dict()["ops"])], cfg.epochs, "pbt")
    assert Policy.from_dict(json.loads(replay.to_json())) == replay
    again = Trainer(cfg, data, replay)
    for _ in range(4):
        again.run_epoch()
    for logged, replayed in zip(second.history, again.history, strict=True):
        assert {k: v for k, v in logged.items() if k.startswith("magnitude")} == \
            {k: v for k, v in replayed.items() if k.startswith("magnitude")}
        assert logged["train_loss"] == replayed["train_loss"] and logged["val_loss"] == replayed["val_loss"]
    for p, q in zip(second.model.parameters(), again.model.parameters(), strict=True):
        assert torch.equal(p, q)


@pytest.mark.usefixtures("mlflow_server")
def test_tiny_pbt_search_exports_the_best_lineage(tmp_path: Path, mlflow_server: str) -> None:
    from autoaug.search.driver import tune_policy

    result = tune_policy(DEFAULT_DATASET, budget="tiny", trials=3, epochs=4, train_size=400, scheduler="pbt",
                         storage=tmp_path, name="pbt", num_cpus=2, cpus_per_trial=1, tracking_uri=mlflow_server,
                         echo=lambda line: None)
    trials = pd.read_csv(result.output_dir / "trials.csv")
    assert len(trials) == 3 and (trials["epoch"] == 4).all() and (trials["status"] == "completed").all()
    exported = Policy.load(result.policy_path)
    assert exported == result.best_policy and exported.schedule.kind == "constant"
    # PBT exploited at least once: some trial's lineage has more than one setting
    lineages = []
    for state_file in result.output_dir.glob(f"*/checkpoint_*/{STATE_FILE}"):
        state = torch.load(state_file)
        if state["epoch"] == 4:
            lineages.append(state)
    assert len(lineages) == 3 and any(len(s["stages"]) > 1 for s in lineages)
    # every finished lineage, the best one included, replays exactly the magnitudes its epochs logged
    for state in lineages:
        replay = replay_policy(state["stages"], 4, "pbt")
        for e, logged in enumerate(state["history"]):
            expected = {k[len("magnitude/"):]: v for k, v in logged.items() if k.startswith("magnitude/")}
            assert replay.magnitudes(e / 4) == pytest.approx(expected)
    top = max(s["history"][-1]["val_acc"] for s in lineages)  # lineages may tie: Ray picks one of them
    best = [s for s in lineages if s["history"][-1]["val_acc"] == top]
    assert any(replay_policy(s["stages"], 4, exported.name) == exported for s in best)
