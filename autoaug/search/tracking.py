"""MLflow tracking of a search: one experiment per dataset, a parent run per search, a child run per trial.

Logged from the Ray driver through ``MlflowClient`` (no global active-run state). Child runs are found
again by their ``autoaug.trial_id`` tag, so a resumed search adds no duplicate runs. Every run is closed
with a status on every exit path: FINISHED, FAILED or KILLED, plus an ``autoaug.status`` tag
(completed / pruned / failed). A tracking server that stops answering mid-search does not stop the search:
the first failed write is reported, nothing more is logged by that process, and at the end it says what was
not logged (the search's own files hold all of it).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from autoaug.errors import AutoaugError
from autoaug.files import write_text
from autoaug.search.provenance import code_tags

PARENT_FILE = "mlflow.json"
ACTIVE: dict[str, SearchTracker] = {}  # live trackers by parent run id; callbacks look them up here


def default_tracking_uri() -> str:
    """A sqlite store in ``./mlruns`` (absolute: trials run in other working directories)."""
    folder = Path("mlruns").resolve()
    return f"sqlite:///{folder / 'mlflow.db'}"


def store_of(target: str | None, storage: str | os.PathLike[str] = "autoaug-runs") -> tuple[str, str]:
    """The tracking store to show and why: the one a search folder ``target`` recorded (``mlflow.json``), the one
    of the search under ``storage`` whose parent run is ``target`` (a run id), or, with no target, the store of
    the latest search under ``storage``; else the default store here."""
    searches = sorted(Path(storage).expanduser().glob(f"*/{PARENT_FILE}"), key=lambda f: f.stat().st_mtime)
    if target is not None and Path(target).expanduser().is_dir():
        record = Path(target).expanduser() / PARENT_FILE
        if not record.exists():
            raise AutoaugError(f"{target!r} is not a tracked search folder: it has no {PARENT_FILE}")
        return json.loads(record.read_text())["tracking_uri"], f"the store of the search in {target}"
    if target is not None:
        for record in reversed(searches):
            saved = json.loads(record.read_text())
            if saved.get("parent_run_id") == target:
                return saved["tracking_uri"], f"the store of search {record.parent.name} (run {target})"
        raise AutoaugError(f"{target!r} is neither a search folder nor the MLflow run of a search under {storage}")
    if searches:
        saved = json.loads(searches[-1].read_text())
        return saved["tracking_uri"], f"the store of the latest search here, {searches[-1].parent.name}"
    return default_tracking_uri(), "the default store here (no search under " + str(storage) + ")"


def check_reachable(uri: str, timeout: float = 5.0) -> None:
    """Fail within seconds, with one clear line, when an HTTP tracking server does not answer."""
    if not uri.startswith(("http://", "https://")):
        return
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout):
            return
    except (urllib.error.URLError, OSError) as e:
        raise AutoaugError(f"MLflow tracking server {uri!r} does not answer: {getattr(e, 'reason', e)}") from None


def client_for(tracking_uri: str) -> Any:
    """An ``MlflowClient`` for ``tracking_uri``, with MLflow's own logging quieted; fails fast when unreachable."""
    import logging

    from mlflow.tracking import MlflowClient

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # a lost server fails a write within seconds (1 + 2 + 4 s of retries), not MLflow's minutes
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    check_reachable(tracking_uri)
    if tracking_uri.startswith("sqlite:///"):
        Path(tracking_uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    return MlflowClient(tracking_uri)


@contextlib.contextmanager
def system_monitor(tracking_uri: str | None, run_id: str | None, on: bool) -> Iterator[None]:
    """With ``on``, MLflow's system metrics (``system/cpu_utilization_percentage``, memory, disk, network, GPU
    where there is one) of this machine logged to ``run_id`` every 10 s while the block runs."""
    if not on or run_id is None:
        yield
        return
    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

    monitor = SystemMetricsMonitor(run_id, tracking_uri=tracking_uri, resume_logging=True)
    monitor.start()
    try:
        yield
    finally:
        monitor.finish()


def tolerant(method: Callable[..., Any]) -> Callable[..., Any]:
    """An MLflow write whose failure does not fail the search: the first one is reported and marks the tracker
    down (``None`` is returned then and from then on, and nothing more is sent)."""

    @functools.wraps(method)
    def guarded(self: Runs, *args: Any, **kwargs: Any) -> Any:
        if self.down is None:
            try:
                return method(self, *args, **kwargs)
            except Exception as e:
                text = str(e).strip().splitlines()
                self.down = f"{type(e).__name__}: {text[0] if text else ''}"[:300]
                self.echo(f"warning: MLflow at {self.uri} failed ({self.down}); nothing more is logged there, "
                          "the work goes on")
        return None

    return guarded


class Runs:
    """Writes params and metrics of runs through one ``MlflowClient``. ``down``: why the tracking server stopped
    taking writes (then nothing more is sent); ``unlogged``: what was not logged since."""

    client: Any
    uri: str
    echo: Callable[[str], None]
    down: str | None = None

    def __init__(self, tracking_uri: str, echo: Callable[[str], None]) -> None:
        self.uri, self.echo, self.unlogged = tracking_uri, echo, set[str]()
        self.client = client_for(tracking_uri)

    def missed(self, what: str) -> None:
        """Note ``what`` (e.g. ``trial 3b1f``) as not logged, when the server is down."""
        if self.down is not None:
            self.unlogged.add(what)

    def say_missed(self, also: str) -> None:
        """After a lost server: one line on what is not in MLflow (the ``unlogged`` items, and ``also``)."""
        if self.down is not None:
            items = ", ".join(sorted(self.unlogged)) or "no run's results"
            self.echo(f"MLflow at {self.uri} was lost ({self.down}); not logged there: {items}; {also}")

    @tolerant
    def log_params(self, run_id: str, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)[:6000]) for k, v in params.items()]
        for i in range(0, len(items), 100):
            self.client.log_batch(run_id, params=items[i : i + 100])

    @tolerant
    def log_metrics(self, run_id: str, metrics: dict[str, Any], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, step) for k, v in metrics.items()
                 if isinstance(v, int | float) and not isinstance(v, bool)]
        for i in range(0, len(items), 500):
            self.client.log_batch(run_id, metrics=items[i : i + 500])

    @tolerant
    def log_dataset(self, run_id: str, fields: dict[str, Any], context: str = "training") -> None:
        """``fields`` (:func:`autoaug.search.provenance.dataset_input`) as a dataset input of ``run_id``."""
        from mlflow.entities import Dataset, DatasetInput, InputTag

        self.client.log_inputs(run_id, [DatasetInput(Dataset(**fields), [InputTag("mlflow.data.context", context)])])

    @tolerant
    def fail(self, run_id: str, error: str) -> None:
        """Close ``run_id`` FAILED, with ``error`` as its ``autoaug.error`` tag."""
        self.client.set_tag(run_id, "autoaug.error", error[:5000])
        self.close(run_id, "FAILED", "failed")

    @tolerant
    def close(self, run_id: str, status: str, outcome: str | None = None) -> None:
        if outcome:
            self.client.set_tag(run_id, "autoaug.status", outcome)
        self.client.set_terminated(run_id, status)


class SearchTracker(Runs):
    """Owns the parent run of one search and the child runs of its trials."""

    def __init__(self, tracking_uri: str, experiment: str, search_dir: Path, params: dict[str, Any],
                 echo: Callable[[str], None] = print) -> None:
        super().__init__(tracking_uri, echo)
        artifacts = None
        if tracking_uri.startswith("sqlite:///"):  # local store: artifacts beside the database, absolute
            artifacts = (Path(tracking_uri[len("sqlite:///"):]).parent / "artifacts").as_uri()
        exp = self.client.get_experiment_by_name(experiment)
        self.experiment_id = exp.experiment_id if exp else self.client.create_experiment(experiment, artifacts)
        record = search_dir / PARENT_FILE
        if record.exists():  # a resumed search keeps its parent run
            self.parent_id = json.loads(record.read_text())["parent_run_id"]
            self.client.update_run(self.parent_id, status="RUNNING")
        else:
            run = self.client.create_run(self.experiment_id, run_name=search_dir.name,
                                         tags={"autoaug.role": "search", **code_tags()})
            self.parent_id = run.info.run_id
            search_dir.mkdir(parents=True, exist_ok=True)
            write_text(record, json.dumps({"parent_run_id": self.parent_id, "tracking_uri": tracking_uri}))
            self.log_params(self.parent_id, params)
        self.children: dict[str, str] = {}
        self.roles: dict[str, str] = {}
        self._load_children()
        ACTIVE[self.parent_id] = self

    def _load_children(self) -> None:
        """The child runs a resumed search already has: ``children`` (trial id -> run id) and their ``roles``."""
        runs = self.client.search_runs([self.experiment_id],
                                       filter_string=f"tags.mlflow.parentRunId = '{self.parent_id}'")
        tags = [r.data.tags | {"run_id": r.info.run_id} for r in runs if "autoaug.trial_id" in r.data.tags]
        self.children = {t["autoaug.trial_id"]: t["run_id"] for t in tags}
        self.roles = {t["autoaug.trial_id"]: t.get("autoaug.role", "trial") for t in tags}

    @tolerant
    def child(self, trial_id: str, params: dict[str, Any], role: str = "trial") -> str:
        """The child run of ``trial_id``, created once."""
        if trial_id not in self.children:
            run = self.client.create_run(self.experiment_id, run_name=f"{role}-{trial_id}", tags={
                "mlflow.parentRunId": self.parent_id, "autoaug.trial_id": trial_id, "autoaug.role": role})
            self.children[trial_id], self.roles[trial_id] = run.info.run_id, role
            self.log_params(run.info.run_id, params)
        return self.children[trial_id]

    @tolerant
    def histories(self, metric: str) -> dict[str, dict[int, float]]:
        """``metric`` of every search trial as logged, by step (epoch): what a resumed search's ASHA rungs
        are refilled from."""
        return {trial_id: {int(m.step): m.value for m in self.client.get_metric_history(run_id, metric)}
                for trial_id, run_id in self.children.items() if self.roles[trial_id] == "trial"}

    @tolerant
    def drop_lost_children(self, trial_ids: set[str]) -> None:
        """Delete the child runs of search trials not in ``trial_ids``: a driver that died (killed, or stopped by
        a storage failure) loses the trials it started after its last saved state, and the resumed search runs
        them as new trials."""
        for trial_id in [t for t in self.children if t not in trial_ids and self.roles[t] == "trial"]:
            self.client.delete_run(self.children.pop(trial_id))

    def finish(self, status: str, artifacts: list[Path] = (), cause: str | None = None) -> None:  # type: ignore[assignment]
        """Close every still-open child run, log ``artifacts`` to the parent and close it (with the ``cause`` of
        a failure as its tag ``autoaug.cause``); after a lost server, say what is not in MLflow."""
        self._finish(status, artifacts, cause)
        self.say_missed(f"the search's files and the end of its parent run {self.parent_id} (left RUNNING); "
                        "the search's own files hold everything")
        ACTIVE.pop(self.parent_id, None)

    @tolerant
    def _finish(self, status: str, artifacts: list[Path], cause: str | None) -> None:
        if cause:
            self.client.set_tag(self.parent_id, "autoaug.cause", cause[:5000])
        for run_id in self.children.values():
            if self.client.get_run(run_id).info.status == "RUNNING":
                self.close(run_id, "KILLED" if status != "FINISHED" else "FINISHED", "interrupted")
        for path in artifacts:
            if path.exists():
                self.client.log_artifact(self.parent_id, str(path))
        self.client.set_terminated(self.parent_id, status)


def trial_error(trial: Any) -> str:
    """The last line of a failed Ray Tune trial's error, e.g. ``TrainingDiverged: training loss became nan``.

    Read from the trial's local error files, which Tune writes before it calls the callbacks."""
    import cloudpickle

    cause = None
    try:
        with open(trial.pickled_error_file, "rb") as f:
            error = cloudpickle.load(f)
        cause = getattr(error, "cause", None) or error
    except Exception:
        pass
    if cause is None:
        return "unknown error"
    lines = [line for line in str(cause).strip().splitlines() if line.strip()]
    return f"{type(cause).__name__}: {lines[-1] if lines else ''}".strip()


def tune_callback(parent_id: str, epochs: int, role: str = "trial") -> Any:
    """A Ray Tune callback that mirrors every trial into child runs of ``parent_id`` (tagged ``autoaug.role``:
    ``trial``, or ``selection`` for the re-runs of :mod:`autoaug.search.selection`).

    It holds only the run id and finds the live :class:`SearchTracker` in :data:`ACTIVE`, so the copy that
    Tune pickles with the experiment keeps working when a search is resumed in a new process. A child run is
    made at a trial's first result (or its error), so a trial that an interrupted search never started
    leaves no run behind.
    """
    from ray.tune import Callback

    class MLflowTrials(Callback):
        def _child(self, trial: Any) -> tuple[SearchTracker, str]:
            from autoaug.search.tracking import (
                ACTIVE,  # the live registry: a pickled copy of this class has its own globals
            )

            tracker = ACTIVE[parent_id]
            run_id = tracker.child(trial.trial_id, dict(trial.config), role)
            tracker.missed(f"{role} {trial.trial_id}")
            return tracker, run_id

        def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
            tracker, run_id = self._child(trial)
            tracker.log_metrics(run_id, {k: result[k] for k in result if k not in ("epoch", "timestamp")},
                                step=int(result.get("epoch", result.get("training_iteration", 0))))

        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            tracker, run_id = self._child(trial)
            epoch = (trial.last_result or {}).get("epoch", 0)
            tracker.close(run_id, "FINISHED", "completed" if epoch >= epochs else "pruned")

        def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            tracker, run_id = self._child(trial)
            tracker.fail(run_id, trial_error(trial))

    return MLflowTrials()
