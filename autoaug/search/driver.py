"""``tune_policy()``: a Ray Tune search over augmentation policies with Optuna (TPE) and ASHA.

Optuna samples the flat parameters of a :class:`~autoaug.search.space.SearchSpace` (define-by-run);
``none`` and the free standards for the data (:func:`autoaug.augment.policy.standards`) are evaluated first as fixed
points, where the space can express them. ASHA stops weak trials early on validation accuracy, at 80% of the
epochs (:data:`RUNG`). A trial ASHA stopped is told to Optuna as PRUNED (with its per-epoch values), not as
COMPLETE: TPE then ranks it below every finished trial instead of comparing its early score with final scores
of full-length trials. Then the best few trials, the best standard and ``none`` train again on more seeds and the
best mean wins (:mod:`autoaug.search.selection`).
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autoaug.augment.policy import Policy
from autoaug.augment.presets import PRESETS, standards
from autoaug.data.datasets import folder_name, load_dataset
from autoaug.errors import AutoaugError, choice_error
from autoaug.files import atomic, write_text
from autoaug.progress import SearchProgress, Status
from autoaug.search.space import SearchSpace, load_space, space_for_dataset
from autoaug.train.trainer import TrainConfig

if TYPE_CHECKING:
    from autoaug.search.selection import Selection
    from autoaug.search.tracking import SearchTracker

METRIC, MODE = "val_acc", "max"
# asha: Optuna samples, ASHA stops weak trials early; fifo: every trial runs all its epochs (benchmarks);
# pbt: population based training changes the magnitudes and probabilities during training
SCHEDULERS = ("asha", "fifo", "pbt")


RECIPE = ("optimizer", "lr", "weight_decay")  # the training recipe a budget sets and search.json records


@dataclass(frozen=True)
class Budget:
    """Search size. The CPU budgets search on a reduced training set (as AutoAugment searched on 4,000
    CIFAR-10 images), where augmentation matters most and a trial is cheap. ``select``: how many of the best
    completed trials train again on ``extra_seeds`` more seeds before the best is named
    (:mod:`autoaug.search.selection`).
    ``optimizer``, ``lr`` and ``weight_decay``: the training recipe of every trial and final run."""

    trials: int
    epochs: int
    model: str = "convnet"
    train_size: int | None = None
    batch_size: int = 64
    select: int = 3
    extra_seeds: int = 2
    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0

    def recipe(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in RECIPE}


BUDGETS = {
    "tiny": Budget(trials=4, epochs=2, model="smallcnn", train_size=2000, select=1, extra_seeds=1),
    # minutes on a laptop's CPU: 1,000 images trained to memorization (SGD, 40 epochs), where crop and flip pay
    # off clearly, so that the search has something to find (the README's demo, on cifar10_small)
    "demo": Budget(trials=6, epochs=40, train_size=1000, batch_size=32, select=1, extra_seeds=1, optimizer="sgd",
                   lr=0.05, weight_decay=5e-4),
    "small": Budget(trials=12, epochs=30, train_size=4000),
    "medium": Budget(trials=40, epochs=40, train_size=10000),
    "large": Budget(trials=100, epochs=60, batch_size=128),
}
# ASHA's first rung, as a share of the epochs. Under a cosine learning-rate schedule augmented models lag early and
# overtake late: in the committed reports' per-epoch histories (scripts/rung_bias.py) rungs at 1/3 to 2/3 of
# training reverse the final order of none, the standards and the searched policy; from 0.8 on every pair apart by
# more than 0.003 keeps it (8 of 9 reports; the ninth flips one pair 0.005 apart, within seed noise, at 0.9).
RUNG = 0.8


@dataclass(frozen=True)
class SearchResult:
    """What a search found: the best policy, every trial, and where the outputs are."""

    best_policy: Policy
    best_val_acc: float
    trials: Any  # pandas.DataFrame: one row per trial
    output_dir: Path
    policy_path: Path
    mlflow_run_id: str
    tracking_uri: str


def _define(space: SearchSpace, trial: Any) -> None:
    """Module-level define-by-run function (a lambda would not pickle)."""
    space.suggest(trial)


def _preset_points(space: SearchSpace, base: TrainConfig, image_shape: Sequence[int]) -> dict[str, dict[str, Any]]:
    """``none``, the standards for images of ``image_shape`` and ``baseline``, as flat points of ``space`` (those
    it can express): the search's first trials."""
    train = {"lr": base.lr, "weight_decay": base.weight_decay}
    points = {name: space.point(PRESETS[name], train) for name in ("none", *standards(image_shape), "baseline")}
    return {name: p for name, p in points.items() if p is not None}


def _preset_column(frame: Any, points: dict[str, dict[str, Any]]) -> list[str]:
    """For each trial (row of ``frame``), the preset whose point it evaluated, or ``""``."""
    def same(a: Any, b: Any) -> bool:
        return a == b or (isinstance(a, float) and isinstance(b, float) and math.isclose(a, b))

    def which(row: Any) -> str:
        return next((name for name, point in points.items()
                     if all(same(row.get(f"config/{k}"), v) for k, v in point.items())), "")

    return [which(row) for _, row in frame.iterrows()]


STUDY_FILE = "optuna.db"  # the search's Optuna study, beside its other files (optuna-dashboard opens it)


def _searcher(space: SearchSpace, seed: int, base: TrainConfig, trials: int, image_shape: Sequence[int]) -> Any:
    """Seeded TPE; a quarter of the trials (at least the standards and two random points) start it. Its study
    lives in memory (and in Tune's checkpoints, for a resume); :func:`_write_study` stores the finished one."""
    import optuna
    from optuna.trial import TrialState
    from ray.tune.search.optuna import OptunaSearch

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    epochs = base.epochs

    class PrunedAwareOptunaSearch(OptunaSearch):
        """Tells Optuna PRUNED for trials that ended before ``epochs`` without an error."""

        def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
            if result and not error and result.get("epoch", epochs) < epochs and trial_id in self._ot_trials:
                if trial_id not in self._completed_trials:
                    self._ot_study.tell(self._ot_trials[trial_id], state=TrialState.PRUNED)
                    self._completed_trials.add(trial_id)
                return
            super().on_trial_complete(trial_id, result, error)

    points = list(_preset_points(space, base, image_shape).values())
    return PrunedAwareOptunaSearch(space=functools.partial(_define, space), metric=METRIC, mode=MODE,
                                   points_to_evaluate=points, sampler=optuna.samplers.TPESampler(
                                       seed=seed, n_startup_trials=max(len(points) + 2, trials // 4)))


PROGRESS: dict[str, SearchProgress] = {}  # the live progress of the searches running in this process


RUNGS: dict[str, dict[str, dict[int, float]]] = {}  # resumed searches: trial id -> {epoch: val_acc}, as recorded


def _asha(key: str, epochs: int, grace: int) -> Any:
    """ASHA (rungs from ``grace`` epochs on, reduction factor 3) whose rung records a resumed search refills
    from the trials' recorded results (:data:`RUNGS` ``[key]``): Tune restores the trials but not the
    scheduler's records, so resumed trials would face empty rungs and never be stopped."""
    from ray.tune.schedulers import ASHAScheduler

    class ResumableASHA(ASHAScheduler):
        def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
            super().on_trial_add(tune_controller, trial)
            from autoaug.search.driver import RUNGS  # the live registry: a restored (pickled) copy has its own globals

            history = RUNGS.get(key, {}).get(trial.trial_id, {})
            for milestone, recorded in self._trial_info[trial.trial_id]._rungs:
                if milestone in history and trial.trial_id not in recorded:
                    recorded[trial.trial_id] = self._metric_op * history[milestone]

    return ResumableASHA(time_attr="epoch", max_t=epochs, grace_period=grace, reduction_factor=3)


def _progress_callback(key: str, epochs: int) -> Any:
    """Feeds :data:`PROGRESS` ``[key]`` from Tune: every result, every ended trial, and a heartbeat from the
    controller's loop. Holds only ``key``, so that the pickled copy a resumed search restores still works."""
    from ray.tune import Callback

    def live() -> SearchProgress | None:
        from autoaug.search.driver import (
            PROGRESS,  # the live registry: a pickled copy of this class has its own globals
        )

        return PROGRESS.get(key)

    class Progress(Callback):
        def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
            if (p := live()) is not None:
                p.tick()

        def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
            if (p := live()) is not None:
                p.result(trial.trial_id, int(result.get("epoch", 0)), result.get(METRIC))

        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            if (p := live()) is not None:
                result = trial.last_result or {}
                epoch = int(result.get("epoch", epochs))
                p.ended(trial.trial_id, "pruned" if epoch < epochs else "done", epoch, result.get(METRIC))

        def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            from autoaug.search.tracking import trial_error

            if (p := live()) is not None:
                p.ended(trial.trial_id, "failed", int((trial.last_result or {}).get("epoch", 0)), None,
                        trial_error(trial))

    return Progress()


def _latest_unfinished(root: Path, dataset: str) -> Path | None:
    """The most recent search folder of ``dataset`` under ``root`` with a stage left: trials (no best policy yet)
    or its report (:func:`record_report` has not noted one)."""
    candidates = []
    for path in root.glob("*/search.json"):
        saved = json.loads(path.read_text())
        if saved["dataset"] == dataset and not (_trained(path.parent) and "report" in saved):
            candidates.append(path.parent)
    return max(candidates, key=lambda p: p.stat().st_mtime, default=None)


def _trained(folder: Path) -> bool:
    """Whether the search in ``folder`` has finished its trials (and selection): its best policy is written."""
    return (folder / "best_policy.json").exists()


def record_report(folder: Path, report: Path | None) -> None:
    """Note in a finished search's search.json that its report is written (in ``report``; ``None``: none was
    asked for), so that ``--resume`` no longer picks it up."""
    _write_json(folder / "search.json", {**json.loads((folder / "search.json").read_text()),
                                         "report": None if report is None else str(report)})


def _finished(out: Path, saved: dict[str, Any]) -> SearchResult:
    """The result of the finished search in ``out`` (``saved``: its search.json), from its files."""
    import pandas as pd

    frame = pd.read_csv(out / "trials.csv")
    if "preset" in frame:
        frame["preset"] = frame["preset"].fillna("")
    return SearchResult(Policy.load(out / "best_policy.json"), saved["best_val_acc"], frame, out,
                        out / "best_policy.json", saved["mlflow_run_id"], saved["tracking_uri"])


def tune_policy(dataset: str = "fashion_mnist_small", *, space: str | None = None, model: str | None = None,
                trials: int | None = None, epochs: int | None = None, budget: str | None = None,
                train_size: int | None = None, cpus_per_trial: float | None = None,
                gpus_per_trial: float | None = None, seed: int | None = None, address: str | None = None,
                storage: str | os.PathLike[str] = "autoaug-runs", name: str | None = None, resume: bool = False,
                tracking_uri: str | None = None, num_cpus: int | None = None, scheduler: str | None = None,
                precision: str | None = None, compile: bool | None = None, select: int | None = None,
                echo: Callable[[str], None] = print, live: bool = False) -> SearchResult:
    """Search a policy for ``dataset``; returns the best policy (also written as JSON) and every trial.

    Defaults: ``budget`` small (it sets trials, epochs, model and training size, which may be given instead),
    ``scheduler`` asha, ``seed`` 0. ``precision`` (auto, fp32, bf16, fp16; default auto) and ``compile``
    (default off) set how every trial computes (:mod:`autoaug.train.precision`); ``auto`` resolves on each trial's
    device. With ``resume``, every setting comes from the search being resumed; one given that contradicts it
    is an error. ``select`` (default: the budget's, 3 for ``small``) best completed trials, the best standard and
    ``none`` train again on more seeds and the best mean wins (0: the best single trial wins; see
    :mod:`autoaug.search.selection`). Progress goes to ``echo``: a line per ended trial and a status line (running
    trials, counts, best, time left) every few seconds, updated in place on the terminal with ``live``."""
    root = Path(storage).expanduser().resolve()
    if root.exists() and not root.is_dir():
        raise AutoaugError(f"storage {str(storage)!r} is a file; give a folder for the searches")
    given = {"space": space, "model": model, "trials": trials, "epochs": epochs, "budget": budget,
             "train_size": train_size, "scheduler": scheduler, "seed": seed, "precision": precision,
             "compile": compile, "select": select}
    if resume:
        out = root / name if name else _latest_unfinished(root, dataset)
        if out is None or not (out / "search.json").is_file():
            raise AutoaugError(f"no unfinished search of {dataset!r} to resume under {root}")
        saved = json.loads((out / "search.json").read_text())
        given = _resumed(given, saved, dataset)
        if _trained(out):
            if "report" in saved:
                report = f" and its report is in {saved['report']}" if saved["report"] else ""
                raise AutoaugError(f"the search in {out} has finished{report}: nothing to resume")
            echo(f"the search in {out} has finished all its trials; its result is read back")
            return _finished(out, saved)
    budget, scheduler = given["budget"] or "small", given["scheduler"] or "asha"
    if budget not in BUDGETS:
        raise choice_error("budget", budget, BUDGETS)
    if scheduler not in SCHEDULERS:
        raise choice_error("scheduler", scheduler, SCHEDULERS)
    b = BUDGETS[budget]
    trials, epochs, model = given["trials"] or b.trials, given["epochs"] or b.epochs, given["model"] or b.model
    train_size = given["train_size"] if given["train_size"] is not None else b.train_size
    seed, precision, compile = given["seed"] or 0, given["precision"] or "auto", bool(given["compile"])
    search_space = load_space(given["space"] or ("per_op" if scheduler == "pbt" else space_for_dataset(dataset)))
    if scheduler == "pbt" and search_space.layer:
        raise AutoaugError(f"--scheduler pbt changes each op's magnitude and probability during training; the space "
                           f"{search_space.source} is the compact one: give a per-op space, e.g. --space per_op")
    grace = max(1, round(RUNG * epochs))
    select = b.select if given["select"] is None else given["select"]
    if isinstance(select, bool) or not isinstance(select, int) or select < 0:
        raise AutoaugError(f"select {select!r} must be 0 (no selection stage) or a positive number of trials")
    base = TrainConfig(model=model, epochs=epochs, batch_size=b.batch_size, seed=seed, precision=precision,
                       compile=compile, val_every=1 if scheduler == "pbt" else _val_every(grace, epochs),
                       **b.recipe())
    if not resume:
        out = root / (name or f"{folder_name(dataset)}-{time.strftime('%Y%m%d-%H%M%S')}")
        if out.exists():
            raise AutoaugError(f"search folder {str(out)!r} already exists; pass --resume to continue it")

    from autoaug.search.tracking import SearchTracker, check_reachable, default_tracking_uri, tune_callback

    tracking_uri = tracking_uri or default_tracking_uri()
    check_reachable(tracking_uri)
    settings = {"dataset": dataset, "space": search_space.source, "model": model, "trials": trials,
                "epochs": epochs, "batch_size": b.batch_size, **b.recipe(), "budget": budget, "train_size": train_size,
                "scheduler": scheduler, "seed": seed, "precision": precision, "compile": compile, "select": select,
                "study": out.name if scheduler != "pbt" else None}
    data = load_dataset(dataset, train_size=train_size, seed=seed)  # nothing is written before the data loads

    import ray
    from ray import tune

    from autoaug.search.cluster import pack, start_ray, trial_resources
    from autoaug.search.trial import run_trial

    if scheduler == "pbt":
        from autoaug.search import pbt

    started = start_ray(address, num_cpus)
    try:  # ... nor before the resources are known to fit
        resources, mem_fraction = trial_resources(cpus_per_trial, gpus_per_trial)
        tracker = SearchTracker(tracking_uri, folder_name(dataset), out, {**settings, **_versions()}, echo)
    except BaseException:
        if started:
            ray.shutdown()
        raise
    # from here on the search exists (its folder and MLflow parent run), and every exit closes the run
    if not resume:
        _write_json(out / "search.json", settings)
    # wall time of the search, summed over its Ctrl-C-interrupted parts (a driver killed outright loses its part)
    t_start = time.perf_counter() - json.loads((out / "search.json").read_text()).get("wall_seconds", 0.0)
    echo(f"{data.summary()}; space {search_space.source}; {trials} trials x up to {epochs} epochs")
    echo(f"MLflow: run {tracker.parent_id} in {tracking_uri}")
    status, cause = "FAILED", None
    PROGRESS[out.name] = progress = SearchProgress(trials, epochs, Status(echo, live))
    try:
        packed = pack(data)
        if search_space.synthetic_ratio is not None:  # trained once, in a task with a trial's resources
            task = ray.remote(num_cpus=resources["cpu"], num_gpus=resources["gpu"], max_retries=0)(_train_generators)
            spent = ray.get(task.remote(packed, search_space.generators, seed, search_space.generator_epochs,
                                        mem_fraction))
            for kind, seconds in spent.items():
                settings[f"generator_seconds.{kind}"] = seconds
                tracker.log_metrics(tracker.parent_id, {f"generator_seconds.{kind}": seconds}, step=0)
                echo(f"generator {kind} ready (trained in {seconds:.0f} s, cached)")
        def trainable_of(fn: Callable[..., None], **params: Any) -> Any:
            return tune.with_resources(tune.with_parameters(fn, data=packed, space=search_space, base=base,
                                                            gpu_memory_fraction=mem_fraction, **params), resources)

        trainable = trainable_of(pbt.run_pbt_trial if scheduler == "pbt" else run_trial)
        callbacks = [_progress_callback(out.name, epochs), tune_callback(tracker.parent_id, epochs)]
        if resume and tune.Tuner.can_restore(str(out)):
            if scheduler == "asha" and (history := tracker.histories(METRIC)):
                RUNGS[out.name] = history
                echo(f"ASHA's rung at epoch {grace} refilled with the recorded results of "
                     f"{sum(grace in h for h in history.values())} trials")
            tuner = tune.Tuner.restore(str(out), trainable=trainable, resume_errored=False, restart_errored=False)
        else:
            param_space, search_alg, trial_scheduler = {}, None, None
            if scheduler == "pbt":
                trial_scheduler, param_space = pbt.scheduler(search_space, epochs, seed)
            else:
                search_alg = _searcher(search_space, seed, base, trials, data.image_shape)
            if scheduler == "asha":
                trial_scheduler = _asha(out.name, epochs, grace)
            # a trial whose worker dies (killed, out of memory, its node lost) runs once more from its start; one
            # that fails again (as a diverging one does) is recorded failed and the search goes on
            tuner = tune.Tuner(
                trainable, param_space=param_space,
                tune_config=tune.TuneConfig(metric=METRIC, mode=MODE, num_samples=trials, reuse_actors=True,
                                            search_alg=search_alg, scheduler=trial_scheduler),
                run_config=tune.RunConfig(name=out.name, storage_path=str(root), verbose=0, callbacks=callbacks,
                                          stop=_storage_stopper(),
                                          failure_config=tune.FailureConfig(max_failures=1),
                                          checkpoint_config=tune.CheckpointConfig(num_to_keep=3)),
            )
        grid = _fit(tuner, out)
        if grid is None or grid.num_terminated + grid.num_errors < trials:  # Tune returns normally after Ctrl-C
            raise KeyboardInterrupt
        frame = _frame(grid)
        tracker.drop_lost_children(set(frame["trial_id"]) if "trial_id" in frame else set())
        settings["wall_seconds"] = time.perf_counter() - t_start
        frame["preset"] = _preset_column(frame, _preset_points(search_space, base, data.image_shape))
        failed = {r.metrics.get("trial_id") for r in grid if r.error is not None and r.metrics}
        frame["status"] = ["failed" if t in failed else "completed" if e >= epochs else "pruned"
                           for t, e in zip(frame.get("trial_id", []), frame.get("epoch", []), strict=True)]
        replay, chosen = None, None
        if scheduler != "pbt" and select:
            chosen = _select(frame, search_space, base, trainable_of, select, b.extra_seeds, out, tracker,
                             progress.status)
            frame = chosen.columns(frame)
            settings["selection"] = chosen.to_dict()
            settings["wall_seconds"] = time.perf_counter() - t_start
        if scheduler == "pbt":  # the best trial's lineage of settings, replayed epoch by epoch
            best = grid.get_best_result(metric=METRIC, mode=MODE, scope="last")
            replay = pbt.replay_policy(pbt.load_stages(best.checkpoint), epochs, f"best-{dataset}")
        result = _summarize(frame, search_space, out, dataset, epochs, settings, tracker, replay, chosen)
        status = "FINISHED"
        return result
    except (KeyboardInterrupt, SystemExit):  # Ctrl-C, or SIGTERM (Ray's handler exits)
        status = "KILLED"
        _write_json(out / "search.json", {**settings, "wall_seconds": time.perf_counter() - t_start})
        echo(f"search interrupted; its state is in {out}. Continue it with --resume (same dataset and storage).")
        raise
    except BaseException as e:
        cause = f"{type(e).__name__}: {e}".splitlines()[0]
        raise
    finally:
        progress.status.close()
        PROGRESS.pop(out.name, None)
        RUNGS.pop(out.name, None)
        if started:
            ray.shutdown()
        tracker.finish(status, [out / "best_policy.json", out / "trials.csv", out / "search.json", out / STUDY_FILE,
                                _space_file(search_space.source)], cause=cause)


def _write_study(frame: Any, space: SearchSpace, folder: Path) -> None:
    """The search's trials as an Optuna study (named after ``folder``) in ``folder/optuna.db``: each trial's
    parameters replayed through the space (so the study has their distributions), its value, its state."""
    import optuna
    import pandas as pd
    from optuna.trial import TrialState

    states = {"completed": TrialState.COMPLETE, "pruned": TrialState.PRUNED, "failed": TrialState.FAIL}
    with atomic(folder / STUDY_FILE) as tmp:
        study = optuna.create_study(study_name=folder.name, storage=f"sqlite:///{tmp.resolve()}", direction="maximize")
        for _, row in frame.iterrows():
            study.enqueue_trial({k[len("config/"):]: v.item() if hasattr(v, "item") else v
                                 for k, v in row.items() if k.startswith("config/") and not pd.isna(v)})
            trial = study.ask()
            space.suggest(trial)
            state = states[row.get("status", "completed")]
            if state == TrialState.COMPLETE:
                study.tell(trial, float(row[METRIC]))
                continue
            if state == TrialState.PRUNED and not pd.isna(row.get(METRIC)):
                trial.report(float(row[METRIC]), int(row["epoch"]))
            study.tell(trial, state=state)


def _resumed(given: dict[str, Any], saved: dict[str, Any], dataset: str) -> dict[str, Any]:
    """The settings of a resumed search: its own (``saved``, from search.json); a ``given`` one that differs is an
    error naming both values."""
    if saved.get("dataset") != dataset:
        raise AutoaugError(f"dataset {dataset!r} contradicts the resumed search's {saved.get('dataset')!r}")
    out = {}
    for key, value in given.items():
        kept = saved.get(key)
        same = value is None or value == kept or (key == "space" and load_space(value).source == kept)
        if not same:
            raise AutoaugError(f"--{key.replace('_', '-')} {value!r} contradicts the resumed search's {kept!r}; "
                               "leave it out to resume with the search's own")
        out[key] = kept
    if out["space"] is not None:  # as the search recorded it: a path of its own, or one in autoaug's search_spaces/
        recorded = Path(out["space"])
        out["space"] = str(recorded if recorded.exists() else _space_file(recorded))
    return out


def _val_every(grace: int, epochs: int) -> int:
    """Validate about ten times a trial, on every ASHA rung: rungs fall at multiples of ``grace`` (grace x 3^k),
    so the interval is the largest divisor of ``grace`` up to a tenth of ``epochs``."""
    return max(d for d in range(1, grace + 1) if grace % d == 0 and d <= max(1, epochs // 10))


def _train_generators(packed: Any, kinds: Sequence[str], seed: int, epochs: int,
                      gpu_memory_fraction: float | None) -> dict[str, float]:
    """Ray task: train (or load from the cache) each generator of ``kinds``; their training seconds."""
    from autoaug.data.synthetic import generator_for
    from autoaug.search.cluster import unpack, worker_device

    device, data = worker_device(gpu_memory_fraction), unpack(packed)
    return {kind: generator_for(kind, data, seed=seed, epochs=epochs, device=device, echo=lambda line: None)[1]
            for kind in kinds}


def _drop_fetch_warnings(record: logging.LogRecord) -> bool:
    """Tune warns with file paths about trials without result files (pending ones of a restored search) while it
    builds a result grid whose per-trial frames autoaug does not read: not for the user."""
    return not record.getMessage().startswith("Failed to fetch metrics")


class _StorageFailures(logging.Filter):
    """Ray's reports of failed writes to the search folder (trial syncs, experiment state), each a traceback:
    kept off the user's screen, the first one remembered in :data:`STORAGE_FAILURE` (which stops the experiment,
    see :func:`_storage_stopper`), and turned into one error once Tune has stopped."""

    LOGGERS = ("ray.train._internal.syncer", "ray.tune.execution.experiment_state")

    def filter(self, record: logging.LogRecord) -> bool:
        import traceback

        message = record.getMessage()
        if not message.startswith(("Last sync command failed", "Saving experiment state to storage")):
            return True
        if not STORAGE_FAILURE:
            text = message + "".join(traceback.format_exception(*record.exc_info) if record.exc_info else "")
            STORAGE_FAILURE.append([line for line in text.splitlines() if line.strip()][-1].strip())
        return False


STORAGE_FAILURE: list[str] = []  # the first failed write to storage of the experiment being fitted


def _storage_stopper() -> Any:
    """A Tune stopper that ends the experiment once a write to its storage failed (:class:`_StorageFailures`):
    nothing would be saved of the trials that went on."""
    from ray.tune import Stopper

    class StopOnStorageFailure(Stopper):
        def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
            return False

        def stop_all(self) -> bool:
            from autoaug.search.driver import STORAGE_FAILURE  # a restored (pickled) copy has its own globals

            return bool(STORAGE_FAILURE)

    return StopOnStorageFailure()


def _fit(tuner: Any, folder: Path) -> Any:
    """``tuner.fit()``, or ``None`` when Ctrl-C (or SIGUSR1) ended it. Tune returns normally then, and may count
    the trials it was running as terminated; its SIGINT handler, installed for the run from the main thread,
    puts the previous handler back when it fires, which tells. The previous handler is put back afterwards in
    any case, so that a later Ctrl-C (in the report) interrupts again. A failed write to ``folder`` (the
    experiment's storage) stops the experiment and raises ``OSError``."""
    before = signal.getsignal(signal.SIGINT)
    catches = threading.current_thread() is threading.main_thread() and not int(
        os.getenv("TUNE_DISABLE_SIGINT_HANDLER", "0"))
    analysis_log = logging.getLogger("ray.tune.analysis.experiment_analysis")
    analysis_log.addFilter(_drop_fetch_warnings)
    storage_logs, watch = [logging.getLogger(name) for name in _StorageFailures.LOGGERS], _StorageFailures()
    STORAGE_FAILURE.clear()
    for log in storage_logs:
        log.addFilter(watch)
    try:
        grid = tuner.fit()
        if STORAGE_FAILURE:
            raise OSError(f"cannot write the search's files in {folder} ({STORAGE_FAILURE[0]}); what was saved "
                          "before is intact: make it writable again and continue with --resume")
        return None if catches and signal.getsignal(signal.SIGINT) is before else grid
    finally:
        analysis_log.removeFilter(_drop_fetch_warnings)
        for log in storage_logs:
            log.removeFilter(watch)
        if catches:
            signal.signal(signal.SIGINT, before)


def _frame(grid: Any) -> Any:
    """One row per trial from its last result as Tune holds it in memory (``config/KEY`` columns as in
    ``ResultGrid.get_dataframe``, which rereads result files that PBT's pause-and-restore can leave short)."""
    import pandas as pd

    return pd.json_normalize([r.metrics for r in grid if r.metrics], sep="/")


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` to ``path`` atomically."""
    write_text(path, json.dumps(data, indent=2))


def _space_file(source: str | os.PathLike[str]) -> Path:
    """A space's file from its recorded ``source``: absolute, or relative to autoaug's own folder."""
    path = Path(source)
    return path if path.is_absolute() else Path(__file__).resolve().parents[2] / path


def _versions() -> dict[str, str]:
    import importlib.metadata as md
    import platform

    out = {"python": platform.python_version()}
    for pkg in ("torch", "ray", "optuna", "mlflow"):
        out[f"version.{pkg}"] = md.version(pkg)
    return out


def _select(frame: Any, space: SearchSpace, base: TrainConfig, trainable_of: Callable[..., Any], k: int,
            extra_seeds: int, out: Path, tracker: SearchTracker, status: Status) -> Selection:
    """Train the candidates of :func:`autoaug.search.selection.candidates` again on ``extra_seeds`` more seeds, as a
    Tune experiment of its own (``out/selection``, a grid of candidate x seed, restored on a resume; its runs are MLflow
    children with role ``selection``)."""
    from ray import tune

    from autoaug.search import selection
    from autoaug.search.tracking import tune_callback
    from autoaug.search.trial import rerun_trial

    roles = selection.candidates(frame, space, k)
    if not roles:
        raise AutoaugError(f"no trial of the search in {out} finished all {base.epochs} epochs")
    seeds = [base.seed + i for i in range(1, extra_seeds + 1)]
    runs = len(roles) * len(seeds)
    status.event(f"selection: {', '.join(roles.values())} train again on seed{'s' * (len(seeds) > 1)} "
                 f"{', '.join(map(str, seeds))} ({runs} runs); the best mean over {len(seeds) + 1} seeds wins")
    key = f"{out.name}/selection"
    PROGRESS[key] = SearchProgress(runs, base.epochs, status)
    trainable = trainable_of(rerun_trial, candidates=selection.parameters(frame, roles))
    try:
        if tune.Tuner.can_restore(str(out / "selection")):
            tuner = tune.Tuner.restore(str(out / "selection"), trainable=trainable, resume_errored=False,
                                       restart_errored=False)
        else:
            tuner = tune.Tuner(
                trainable, param_space={"of": tune.grid_search(list(roles)), "seed": tune.grid_search(seeds)},
                tune_config=tune.TuneConfig(metric=METRIC, mode=MODE, reuse_actors=True),
                run_config=tune.RunConfig(name="selection", storage_path=str(out), verbose=0, stop=_storage_stopper(),
                                          callbacks=[_progress_callback(key, base.epochs),
                                                     tune_callback(tracker.parent_id, base.epochs, role="selection")],
                                          failure_config=tune.FailureConfig(max_failures=1)))
        grid = _fit(tuner, out / "selection")
        if grid is None or grid.num_terminated + grid.num_errors < runs:
            raise KeyboardInterrupt
    finally:
        PROGRESS.pop(key, None)
    rerun = _frame(grid)
    failed = {r.metrics.get("trial_id") for r in grid if r.error is not None and r.metrics}
    rerun["status"] = ["failed" if t in failed or e < base.epochs else "completed"
                       for t, e in zip(rerun.get("trial_id", []), rerun.get("epoch", []), strict=True)]
    chosen = selection.collect(frame, rerun, roles, seeds, base.seed)
    vs = chosen.versus_none()
    status.event(f"selected trial {chosen.picked} ({chosen.roles[chosen.picked]}): mean validation accuracy "
                 f"{chosen.mean(chosen.picked):.4f} over {len(chosen.seeds)} seeds"
                 + (f"; vs none {vs}" if vs is not None else ""))
    metrics = {"selection.picked_mean_val_acc": chosen.mean(chosen.picked)}
    if vs is not None:
        metrics |= {"selection.vs_none": vs.mean, "selection.vs_none_low": vs.low, "selection.vs_none_high": vs.high}
    tracker.log_metrics(tracker.parent_id, metrics, step=0)
    return chosen


def _summarize(frame: Any, space: SearchSpace, out: Path, dataset: str, epochs: int, settings: dict[str, Any],
               tracker: SearchTracker, replay: Policy | None = None, chosen: Selection | None = None) -> SearchResult:
    """Write the best policy (the ``chosen`` trial's where there was a selection stage; ``replay`` where given: a
    PBT lineage), trials.csv and search.json."""
    finished = frame[frame["epoch"] == epochs] if "epoch" in frame else frame.iloc[0:0]
    if finished.empty:
        raise AutoaugError(f"no trial of the search in {out} finished all {epochs} epochs")
    best_row = (finished.loc[finished[METRIC].idxmax()] if chosen is None
                else finished[finished["trial_id"] == chosen.picked].iloc[0])
    params = {k[len("config/"):]: v for k, v in best_row.items() if k.startswith("config/")}
    best = replay or space.to_policy(params, name=f"best-{dataset}")
    policy_path = best.save(out / "best_policy.json")
    with atomic(out / "trials.csv") as tmp:
        frame.to_csv(tmp, index=False)
    if settings.get("study"):
        _write_study(frame, space, out)
    best_val_acc = float(best_row[METRIC]) if chosen is None else chosen.mean(chosen.picked)
    summary = {**settings, "best_val_acc": best_val_acc, "best_trial_id": str(best_row.get("trial_id", "")),
               "mlflow_run_id": tracker.parent_id, "tracking_uri": tracker.uri}
    _write_json(out / "search.json", summary)
    tracker.log_metrics(tracker.parent_id, {"best_val_acc": summary["best_val_acc"]}, step=0)
    return SearchResult(best, summary["best_val_acc"], frame, out, policy_path, tracker.parent_id, tracker.uri)
