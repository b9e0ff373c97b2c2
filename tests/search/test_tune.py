from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from conftest import ray_processes as _ray_processes

from autoaug.augment.policy import Policy
from autoaug.errors import AutoaugError
from autoaug.search import SearchRecord, tune_policy


def test_mlflow_has_the_parent_and_one_child_per_trial(search, mlflow_server: str) -> None:
    from mlflow.tracking import MlflowClient

    result, _ = search
    client = MlflowClient(mlflow_server)
    parent = client.get_run(result.mlflow_run_id)
    assert parent.info.status == "FINISHED" and parent.data.params["dataset"] == "fashion_mnist_small"
    artifacts = {a.path for a in client.list_artifacts(result.mlflow_run_id)}
    assert {"best_policy.json", "trials.csv", "default.yaml"} <= artifacts
    children = client.search_runs([parent.info.experiment_id], filter_string=(
        f"tags.mlflow.parentRunId = '{result.mlflow_run_id}' and tags.`autoaug.role` = 'trial'"))
    assert len(children) == 8
    assert all(c.info.status == "FINISHED" for c in children)
    outcomes = sorted(c.data.tags["autoaug.status"] for c in children)
    assert "pruned" in outcomes and "completed" in outcomes
    full = next(c for c in children if c.data.tags["autoaug.status"] == "completed")
    history = client.get_metric_history(full.info.run_id, "val_acc")
    assert [m.step for m in history] == [1, 2, 3]
    assert {"base", "n_ops", "magnitude", "style"} <= set(full.data.params)
    trials = pd.read_csv(result.output_dir / "trials.csv")
    candidates = set(trials.loc[trials["selection.role"].fillna("").str.startswith("top"), "trial_id"])
    reruns = _selection_runs(client, result.mlflow_run_id)
    assert sorted(r.data.params["of"] for r in reruns) == sorted(candidates)  # none when ASHA stopped every sample
    assert parent.data.metrics["selection.picked_mean_val_acc"] == pytest.approx(result.best_val_acc)


def _selection_runs(client, parent_run_id: str) -> list:
    """The selection's re-trainings under a search's parent run in MLflow."""
    experiment = client.get_run(parent_run_id).info.experiment_id
    return client.search_runs([experiment], filter_string=(
        f"tags.mlflow.parentRunId = '{parent_run_id}' and tags.`autoaug.role` = 'selection'"))


def test_the_search_run_records_its_code_and_its_data(search, mlflow_server: str) -> None:
    """As MLflow's users expect: the git commit of the repository it ran in, and the dataset as an input (name,
    digest, splits and sizes)."""
    import json
    import subprocess

    from mlflow.tracking import MlflowClient

    from autoaug.data import load_dataset
    from autoaug.search.provenance import digest

    result, _ = search
    parent = MlflowClient(mlflow_server).get_run(result.mlflow_run_id)
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    assert parent.data.tags["mlflow.source.git.commit"] == head
    (used,) = parent.inputs.dataset_inputs
    data = load_dataset("fashion_mnist_small", train_size=600, seed=0)
    assert (used.dataset.name, used.dataset.digest) == ("fashion_mnist_small", digest(data))
    assert json.loads(used.dataset.profile) == {"train": 600, "val": 1000, "test": 2000, "image_shape": [1, 28, 28],
                                                "classes": 10}
    assert [(t.key, t.value) for t in used.tags] == [("mlflow.data.context", "training")]


def test_unreachable_tracking_server_fails_fast(tmp_path: Path) -> None:
    with pytest.raises(AutoaugError, match=r"MLflow tracking server .http://127\.0\.0\.1:9. does not answer"):
        tune_policy("fashion_mnist_small", storage=tmp_path, tracking_uri="http://127.0.0.1:9")


def test_search_runs_on_real_ray_and_asha_stops_trials(search) -> None:
    result, _ = search
    trials = pd.read_csv(result.output_dir / "trials.csv")
    assert len(trials) == 8
    assert (trials["epoch"] < 3).any(), "ASHA stopped no trial"
    points = trials["preset"].fillna("") != ""
    assert (trials.loc[points, "epoch"] == 3).all()  # none and the standards always run to the end
    assert Policy.load(result.policy_path) == result.best_policy


def test_selection_scores_the_best_sampled_trial_every_standard_and_none_on_a_fresh_seed(tmp_path: Path) -> None:
    """budget tiny: `none` and the 5 standards of the default space train on the selection's seed (1) in the search
    itself, the sampled trial on the search's (0) and again on 1; the best score on seed 1 wins, the search's own
    score of the sampled trial aside."""
    result = tune_policy("fashion_mnist_small", budget="tiny", trials=7, epochs=1, train_size=400, scheduler="fifo",
                         storage=tmp_path / "runs", name="sel", num_cpus=2, cpus_per_trial=1,
                         tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", echo=lambda line: None)
    trials = pd.read_csv(result.output_dir / "trials.csv")
    chosen = trials[trials["selection.role"].fillna("") != ""].set_index("trial_id")
    points = trials[trials["preset"].fillna("") != ""].set_index("trial_id")
    sampled = trials.loc[trials["preset"].fillna("") == "", "trial_id"].tolist()
    assert len(points) == 6 and len(sampled) == 1
    assert set(chosen.index) == {*sampled, *points.index} and chosen.loc[sampled[0], "selection.role"] == "top 1"
    assert "selection.val_acc.seed0" not in trials  # the search's seed does not vote
    scores = chosen["selection.val_acc.seed1"]
    assert scores[points.index].tolist() == pytest.approx(points["val_acc"].tolist())  # their run in the search
    assert scores[sampled[0]] != pytest.approx(chosen.loc[sampled[0], "val_acc"])  # its own run on seed 1
    picked = chosen.index[chosen["selection.picked"]].tolist()
    assert picked == [scores.idxmax()] and result.best_val_acc == pytest.approx(scores.max())
    record = SearchRecord.from_file(result.output_dir)
    assert record.best_trial_id == picked[0] and record.selection["seeds"] == [1] and record.points_seed == 1
    from mlflow.tracking import MlflowClient

    (rerun,) = _selection_runs(MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}"), result.mlflow_run_id)
    assert rerun.data.params["of"] == sampled[0] and rerun.data.params["seed"] == "1"  # the points: their trial
    assert rerun.info.status == "FINISHED"
    assert record.selection["runs"] == 1


def test_search_evaluates_none_and_the_standards_first(search) -> None:
    result, _ = search
    trials = pd.read_csv(result.output_dir / "trials.csv")
    # none and the standards the space's bases give for 28 px clothes, then 2 sampled trials
    assert set(trials["preset"].fillna("")) == {"none", "cropflip", "randaugment", "trivialaugment",
                                                "cropflip+randaugment", "cropflip+trivialaugment", ""}
    assert (trials["preset"].fillna("") == "").sum() == 2
    none = trials[trials["preset"] == "none"].iloc[0]
    assert none["config/n_ops"] == 0 and none["config/base"] == "none"


def test_ray_is_stopped_after_the_search(search) -> None:
    import ray

    _, before = search
    assert not ray.is_initialized()
    assert _ray_processes() <= before


def test_existing_folder_needs_resume(search) -> None:
    result, _ = search
    with pytest.raises(AutoaugError, match="already exists; pass --resume"):
        tune_policy("fashion_mnist_small", storage=result.output_dir.parent, name="s")
    with pytest.raises(AutoaugError, match="no unfinished search"):
        tune_policy("fashion_mnist_small", storage=result.output_dir.parent / "none", resume=True)


def test_too_many_cpus_per_trial(tmp_path: Path) -> None:
    with pytest.raises(AutoaugError, match="64 cpus per trial is more than the 2"):
        tune_policy("fashion_mnist_small", budget="tiny", storage=tmp_path, num_cpus=2, cpus_per_trial=64,
                    tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", echo=lambda line: None)


def test_failing_trials_are_recorded_and_the_search_goes_on(tmp_path: Path) -> None:
    """Trials whose learning rate makes the loss overflow fail; the others finish and one of them wins."""
    from mlflow.tracking import MlflowClient

    space = tmp_path / "wild-lr.yaml"
    space.write_text("extends: default\nlayer: {bases: [none]}\ntrain: {lr: [1.0e-3, 1.0e+30]}\n")  # none, RA, TA first
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    lines: list[str] = []
    result = tune_policy("fashion_mnist_small", space=str(space), budget="tiny", trials=6, epochs=1,
                         train_size=400, storage=tmp_path / "runs", name="f", num_cpus=2, cpus_per_trial=1,
                         tracking_uri=uri, echo=lines.append)
    client = MlflowClient(uri)
    children = client.search_runs([client.get_run(result.mlflow_run_id).info.experiment_id],
                                  filter_string=f"tags.mlflow.parentRunId = '{result.mlflow_run_id}'")
    failed = [c for c in children if c.data.tags["autoaug.status"] == "failed"]
    assert failed and all(c.info.status == "FAILED" for c in failed)
    assert all("TrainingDiverged" in c.data.tags["autoaug.error"] for c in failed)
    assert all(float(c.data.params["train.lr"]) > 1e-3 for c in failed)
    assert sum(c.data.tags["autoaug.status"] == "completed" for c in children) >= 2  # none and standards at least
    assert any("FAILED (TrainingDiverged: training loss became" in line for line in lines)
    assert result.best_val_acc > 0.5


def test_resume_takes_every_setting_from_the_search_it_resumes() -> None:
    from autoaug.search import SearchRecord
    from autoaug.search.settings import resumed

    fields = {"dataset": "fashion_mnist_small", "space": "search_spaces/default.yaml", "model": "convnet",
              "trials": 40, "epochs": 40, "batch_size": 64, "budget": "medium", "train_size": 10000,
              "scheduler": "asha", "seed": 0, "precision": "fp32", "compile": False, "select": 3}
    saved = SearchRecord(**fields)
    nothing = dict.fromkeys(("space", "model", "trials", "epochs", "budget", "train_size", "scheduler", "seed",
                             "precision", "compile", "select"))
    assert resumed(nothing, saved, "fashion_mnist_small") == {k: fields[k] for k in nothing}
    same = {**nothing, "budget": "medium", "space": "default", "seed": 0}
    assert resumed(same, saved, "fashion_mnist_small")["trials"] == 40
    with pytest.raises(AutoaugError, match="--budget 'small' contradicts the resumed search's 'medium'"):
        resumed({**nothing, "budget": "small"}, saved, "fashion_mnist_small")
    with pytest.raises(AutoaugError, match="--train-size 4000 contradicts the resumed search's 10000"):
        resumed({**nothing, "train_size": 4000}, saved, "fashion_mnist_small")
    with pytest.raises(AutoaugError, match="dataset 'mnist' contradicts the resumed search's 'fashion_mnist_small'"):
        resumed(nothing, saved, "mnist")
    old = SearchRecord.from_dict({k: v for k, v in fields.items() if k not in ("precision", "compile", "select")})
    assert resumed(nothing, old, "fashion_mnist_small")["precision"] == "auto"  # an older search: the default


def test_tunes_warning_about_trials_without_result_files_is_not_shown(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from autoaug.search.hooks import drop_fetch_warnings

    log = logging.getLogger("ray.tune.analysis.experiment_analysis")
    log.addFilter(drop_fetch_warnings)
    try:
        with caplog.at_level(logging.WARNING):
            log.warning("Failed to fetch metrics for 1 trial(s):\n- t1: FileNotFoundError('/tmp/x/progress.csv')")
            log.warning("something else")
    finally:
        log.removeFilter(drop_fetch_warnings)
    assert [r.getMessage() for r in caplog.records] == ["something else"]


def test_a_resumed_searchs_asha_judges_against_the_recorded_rung() -> None:
    """Tune restores trials, not the scheduler's records: the rung is refilled from the recorded results, so a
    resumed trial below the rung's top third stops (with empty rungs it would go on)."""
    from types import SimpleNamespace

    from ray.tune.schedulers import TrialScheduler

    from autoaug.search.hooks import RUNGS, asha

    recorded = {"a": {1: 0.5, 4: 0.90}, "b": {4: 0.80}, "c": {2: 0.6, 4: 0.70}}

    def judge(history: dict[str, dict[int, float]]) -> str:
        RUNGS["s"] = history
        try:
            scheduler = asha("s", epochs=5, grace=4)
            scheduler.set_search_properties("val_acc", "max")
            for trial_id in [*recorded, "d"]:
                scheduler.on_trial_add(None, SimpleNamespace(trial_id=trial_id))
            return scheduler.on_trial_result(None, SimpleNamespace(trial_id="d"), {"epoch": 4, "val_acc": 0.75})
        finally:
            RUNGS.pop("s")

    assert judge(recorded) == TrialScheduler.STOP  # 0.75 is below the top third of 0.9, 0.8, 0.7
    assert judge({}) == TrialScheduler.CONTINUE


def test_a_tuner_without_its_experiment_state_is_not_restored(tmp_path: Path) -> None:
    """A driver killed after Tune wrote its tuner but before the experiment's state: --resume starts anew."""
    from autoaug.search.hooks import restorable

    assert not restorable(tmp_path)
    (tmp_path / "tuner.pkl").write_bytes(b"")
    assert not restorable(tmp_path)
    (tmp_path / "experiment_state-2026-12-03_16-36-18.json").write_text("{}")
    assert restorable(tmp_path)


def test_a_budgets_training_size_is_a_ceiling(tmp_path: Path) -> None:
    """cifar10_small holds 1,800 training images after its validation split: the tiny budget's 2,000 become all
    1,800, said first; an explicit --train-size beyond the data stays an error, and nothing is written."""
    from autoaug.search import RESUMABLE, resolve

    given = dict.fromkeys(RESUMABLE)
    settings = resolve("cifar10_small", {**given, "budget": "tiny"}, tmp_path, None, False)
    assert settings.record.train_size is None
    assert settings.notes == ("budget 'tiny' trains on up to 2000 images; cifar10_small has 1800 after its "
                              "validation split: the search trains on all 1800",)
    assert resolve("cifar10_small", {**given, "budget": "demo"}, tmp_path, None, False).record.train_size == 1000
    with pytest.raises(AutoaugError, match="train size 2000 is out of range; allowed: 10 to 1800"):
        tune_policy("cifar10_small", budget="tiny", train_size=2000, storage=tmp_path,
                    tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", echo=lambda line: None)
    assert list(tmp_path.iterdir()) == []
