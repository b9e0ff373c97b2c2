"""Faults, with real processes: the driver killed at three points and the search resumed, a trial's worker killed,
the tracking server killed mid-search, the storage made read-only mid-search."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import own_ray_workers, ray_processes, serve_mlflow

SEARCH = [sys.executable, "-m", "autoaug", "search", "--budget", "tiny", "--trials", "5", "--epochs", "2",
          "--train-size", "400", "--name", "r"]
REPORT = ["--report-seeds", "2", "--compare", "trivialaugment"]


def _command(tmp_path: Path, *extra: str, report: bool = False, uri: str | None = None) -> list[str]:
    uri = uri or f"sqlite:///{tmp_path / 'mlflow.db'}"
    return [*SEARCH, "--storage", str(tmp_path / "runs"), "--tracking-uri", uri,
            *(["--reports", str(tmp_path / "reports"), *REPORT] if report else ["--no-report"]), *extra]


def _run_until(cmd: list[str], log: Path, ready: re.Pattern[str], cwd: Path, timeout: float = 400,
               env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start ``cmd`` with its output in ``log``; return once a line of it matches ``ready`` (the process runs on)."""
    out = log.open("w")
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=cwd, env=env)
    deadline = time.time() + timeout
    while not ready.search(log.read_text()):
        assert proc.poll() is None, f"ended with {proc.returncode} before {ready.pattern!r}:\n{log.read_text()}"
        assert time.time() < deadline, f"no {ready.pattern!r} within {timeout} s:\n{log.read_text()}"
        time.sleep(0.2)
    return proc


def _wait_for_ray_to_go(before: set[int], timeout: float = 30) -> None:
    deadline = time.time() + timeout  # Ray's processes die with their driver (they share its fate)
    while ray_processes() - before and time.time() < deadline:
        time.sleep(1)
    assert not ray_processes() - before, "Ray processes outlived the killed driver"


def _children(uri: str, parent_id: str, role: str) -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    experiment = client.get_run(parent_id).info.experiment_id
    return client.search_runs([experiment], filter_string=(
        f"tags.mlflow.parentRunId = '{parent_id}' and tags.`autoaug.role` = '{role}'"))


def _check_one_run_per_trial(tmp_path: Path) -> pd.DataFrame:
    from mlflow.tracking import MlflowClient

    folder, uri = tmp_path / "runs" / "r", f"sqlite:///{tmp_path / 'mlflow.db'}"
    trials = pd.read_csv(folder / "trials.csv")
    assert len(trials) == 5 and trials["trial_id"].is_unique
    parent_id = json.loads((folder / "mlflow.json").read_text())["parent_run_id"]
    assert MlflowClient(uri).get_run(parent_id).info.status == "FINISHED"
    children = _children(uri, parent_id, "trial")
    assert sorted(c.data.tags["autoaug.trial_id"] for c in children) == sorted(trials["trial_id"])
    assert all(c.info.status == "FINISHED" for c in children)
    assert sorted(_study_trials(folder)) == sorted(trials["trial_id"])  # the Optuna study agrees with trials.csv
    return trials


def _study_trials(folder: Path) -> list[str]:
    """The Tune trial ids of the trials in the search's Optuna study, as ``optuna.load_study`` sees them."""
    import optuna

    study = optuna.load_study(study_name=folder.name, storage=f"sqlite:///{folder / 'optuna.db'}")
    return [t.user_attrs["tune_trial_id"] for t in study.get_trials()]


# kill points: before any trial ends (trials are starting), after the first trial ended, after the first final run
POINTS = {"before the first trial ends": r"MLflow: run ", "mid-search": r"trial 1/5", "during the report": r"final 1/"}


@pytest.mark.parametrize(("sig", "point"), [
    ("SIGINT", "mid-search"),
    pytest.param("SIGKILL", "mid-search", marks=pytest.mark.slow),
    pytest.param("SIGKILL", "before the first trial ends", marks=pytest.mark.slow),
    pytest.param("SIGKILL", "during the report", marks=pytest.mark.slow),
])
def test_a_killed_search_resumes_without_losing_or_repeating_work(tmp_path: Path, sig: str, point: str) -> None:
    """Ctrl-C or kill -9 the driver, then the same command with ``--resume``: every trial ends once, with one
    MLflow run; in the report, each final run is trained and logged once."""
    before = ray_processes()
    report = point == "during the report"
    first = _run_until(_command(tmp_path, report=report), tmp_path / "first.log", re.compile(POINTS[point]), tmp_path)
    if point == "mid-search":  # the running search's study holds the trial that ended
        assert len(_study_trials(tmp_path / "runs" / "r")) >= 1 and first.poll() is None
    first.send_signal(getattr(signal, sig))
    code = first.wait(timeout=120)
    text = (tmp_path / "first.log").read_text()
    if point == "before the first trial ends":
        assert "trial 1/5" not in text, "a trial ended before the kill: this is the mid-search case"
    if sig == "SIGINT":
        assert code == 130 and "Continue it with --resume" in text, text
    else:
        assert code == -signal.SIGKILL
        _wait_for_ray_to_go(before)
    assert report or not (tmp_path / "runs" / "r" / "best_policy.json").exists()

    second = subprocess.run(_command(tmp_path, "--resume", report=report), capture_output=True, text=True,
                            cwd=tmp_path, timeout=900)
    assert second.returncode == 0, second.stdout + second.stderr
    _check_one_run_per_trial(tmp_path)
    assert ray_processes() <= before
    if sig == "SIGINT":  # Tune saved its state: the trials come back, and ASHA's rung gets their results again
        assert re.search(r"ASHA's rung at epoch 2 refilled with the recorded results of [1-9]", second.stdout)
    if report:
        assert "has finished all its trials" in second.stdout
        done = len(re.findall(r"\] final \d+/\d+: ", text))
        reused = re.search(r"reusing (\d+) of", second.stdout)  # at least the runs the first report showed as done
        assert done >= 1 and reused and int(reused.group(1)) >= done, second.stdout
        (runs,) = (tmp_path / "reports").glob("*/runs.json")
        trained = {(r["policy"], r["seed"]) for r in json.loads(runs.read_text())["records"] if "same_as" not in r}
        parent_id = json.loads((tmp_path / "runs" / "r" / "mlflow.json").read_text())["parent_run_id"]
        finals = [(c.data.tags["autoaug.policy"], int(c.data.tags["autoaug.seed"]))
                  for c in _children(f"sqlite:///{tmp_path / 'mlflow.db'}", parent_id, "final")]
        assert sorted(finals) == sorted(trained)  # each final run logged once
        third = subprocess.run(_command(tmp_path, "--resume", report=report), capture_output=True, text=True,
                               cwd=tmp_path, timeout=120)
        assert third.returncode == 2 and "has finished and its report is in" in third.stderr, third.stderr


@pytest.mark.slow
def test_a_killed_trial_worker_is_retried_and_the_search_finishes(tmp_path: Path) -> None:
    """kill -9 the Ray worker process of a running trial: Tune runs the trial again (once) and the search ends
    with every trial complete, each with one MLflow run."""
    before, earlier = ray_processes(), own_ray_workers("ray::ImplicitFunc.train")
    cmd = _command(tmp_path, "--epochs", "6", "--train-size", "2000", "--scheduler", "fifo", "--select", "0")
    proc = subprocess.Popen(cmd, stdout=(tmp_path / "search.log").open("w"), stderr=subprocess.STDOUT, cwd=tmp_path)
    deadline, seen = time.time() + 400, {}
    while True:  # a worker seen training for a second: mid-trial
        assert proc.poll() is None and time.time() < deadline, (tmp_path / "search.log").read_text()
        now = own_ray_workers("ray::ImplicitFunc.train") - earlier  # this search's trial workers
        seen = {pid: seen.get(pid, time.time()) for pid in now}
        if victims := [pid for pid, since in seen.items() if time.time() - since > 1.0]:
            break
        time.sleep(0.1)
    os.kill(victims[0], signal.SIGKILL)
    assert proc.wait(timeout=600) == 0, (tmp_path / "search.log").read_text()
    trials = _check_one_run_per_trial(tmp_path)
    assert (trials["epoch"] == 6).all()  # the killed trial too, on its second try
    assert ray_processes() <= before


@pytest.mark.slow
def test_a_lost_tracking_server_does_not_stop_the_search(tmp_path: Path) -> None:
    """kill -9 the MLflow server after the first trial: the search finishes, writes its files, and says what was
    not logged."""
    with serve_mlflow(tmp_path / "mlflow") as (uri, server):
        search = _run_until(_command(tmp_path, "--select", "0", uri=uri), tmp_path / "search.log",
                            re.compile(r"trial 1/5"), tmp_path)
        os.killpg(server.pid, signal.SIGKILL)
        code = search.wait(timeout=600)
    text = (tmp_path / "search.log").read_text()
    assert code == 0, text
    assert re.search(rf"warning: MLflow at {uri} failed \(.+\); nothing more is logged there", text)
    missed = re.search(rf"MLflow at {uri} was lost \(.+\); not logged there: (.+)", text)
    assert missed and "trial " in missed.group(1) and "left RUNNING" in missed.group(1), text
    assert len(pd.read_csv(tmp_path / "runs" / "r" / "trials.csv")) == 5
    assert (tmp_path / "runs" / "r" / "best_policy.json").exists()


@contextlib.contextmanager
def _read_only(folder: Path):
    """``folder`` made unwritable (no file made, replaced or removed in it) for the block: by its mode, or, for
    root, whom modes do not stop, by the immutable attribute."""
    undo = ["chmod", "755", str(folder)]
    if os.geteuid() == 0:
        if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode:
            pytest.skip("running as root where chattr +i is not allowed: no way to make a folder read-only")
        undo = ["chattr", "-i", str(folder)]
    else:
        folder.chmod(0o555)
    try:
        with pytest.raises(OSError):
            (folder / ".probe").write_text("")
        yield
    finally:
        subprocess.run(undo, check=True)


@pytest.mark.slow
def test_storage_that_becomes_read_only_stops_the_search_cleanly(tmp_path: Path) -> None:
    """The search folder turns read-only mid-search: one clear error line, the files already written intact, no
    Ray left; writable again, ``--resume`` finishes the search."""
    before = ray_processes()
    folder = tmp_path / "runs" / "r"
    search = _run_until(_command(tmp_path), tmp_path / "search.log", re.compile(r"trial 1/5"), tmp_path)
    saved = {p.name: p.read_bytes() for p in folder.iterdir() if p.suffix == ".json" and p.name != "mlflow.json"}
    with _read_only(folder):
        code = search.wait(timeout=600)
        text = (tmp_path / "search.log").read_text()
        assert code == 1, text
        errors = [line for line in text.splitlines() if line.startswith("autoaug: error:")]
        assert len(errors) == 1 and str(folder) in errors[0] and "Traceback" not in text, text
        assert json.loads((folder / "search.json").read_text())["dataset"] == "fashion_mnist_small"
    _wait_for_ray_to_go(before)
    assert {p.name for p in folder.iterdir() if p.suffix == ".json"} >= set(saved)
    again = subprocess.run(_command(tmp_path, "--resume"), capture_output=True, text=True, cwd=tmp_path,
                           timeout=900)
    assert again.returncode == 0, again.stdout + again.stderr
    _check_one_run_per_trial(tmp_path)
