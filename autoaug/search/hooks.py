"""The Ray Tune and Optuna pieces of a search: Optuna's TPE that knows pruned trials, ASHA whose rung a resumed
search refills, the progress callback, the stopper for a lost storage, and ``fit`` that tells Ctrl-C apart.

Tune pickles the callbacks, scheduler and stopper with the experiment; the pickled copies reach this process's
live state through this module's registries (:data:`PROGRESS`, :data:`RUNGS`, :data:`STORAGE_FAILURE`).
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from autoaug.progress import SearchProgress
from autoaug.search.space import SearchSpace, is_point

METRIC, MODE = "val_acc", "max"


def _define(space: SearchSpace, trial: Any) -> None:
    """Module-level define-by-run function (a lambda would not pickle)."""
    space.suggest(trial)


def searcher(space: SearchSpace, seed: int, points: Sequence[dict[str, Any]], epochs: int) -> Any:
    """Seeded TPE that evaluates ``points`` first and models once they have finished (a small budget has no trials
    to spare for random ones; a trial sampled while points still run is random; ``constant_liar`` keeps trials that
    run side by side apart). A trial that ended before
    ``epochs`` without an error is told to Optuna as PRUNED. Its study lives in memory (and in Tune's checkpoints,
    for a resume); :mod:`autoaug.search.study` shows it in ``optuna.db``."""
    import optuna
    from optuna.trial import TrialState
    from ray.tune.search.optuna import OptunaSearch

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    class PrunedAwareOptunaSearch(OptunaSearch):
        """Tells Optuna PRUNED for trials that ended before ``epochs`` without an error."""

        def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
            if result and not error and result.get("epoch", epochs) < epochs and trial_id in self._ot_trials:
                if trial_id not in self._completed_trials:
                    self._ot_study.tell(self._ot_trials[trial_id], state=TrialState.PRUNED)
                    self._completed_trials.add(trial_id)
                return
            super().on_trial_complete(trial_id, result, error)

    return PrunedAwareOptunaSearch(space=functools.partial(_define, space), metric=METRIC, mode=MODE,
                                   points_to_evaluate=list(points), sampler=optuna.samplers.TPESampler(
                                       seed=seed, n_startup_trials=max(len(points), 2), constant_liar=True))


PROGRESS: dict[str, SearchProgress] = {}  # the live progress of the searches running in this process


RUNGS: dict[str, dict[str, dict[int, float]]] = {}  # resumed searches: trial id -> {epoch: val_acc}, as recorded


def asha(key: str, epochs: int, grace: int, points: Sequence[dict[str, Any]] = ()) -> Any:
    """ASHA (rungs from ``grace`` epochs on, reduction factor 3) whose rung records a resumed search refills
    from the trials' recorded results (:data:`RUNGS` ``[key]``): Tune restores the trials but not the
    scheduler's records, so resumed trials would face empty rungs and never be stopped. Trials of ``points``
    (``none`` and the standards, whose run is their selection run) enter the rungs but are never stopped."""
    from ray.tune.schedulers import ASHAScheduler, TrialScheduler

    class ResumableASHA(ASHAScheduler):
        def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
            action = super().on_trial_result(tune_controller, trial, result)
            if action == TrialScheduler.STOP and any(is_point(trial.config, p) for p in points):
                return TrialScheduler.CONTINUE
            return action

        def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
            super().on_trial_add(tune_controller, trial)
            from autoaug.search.hooks import RUNGS  # the live registry: a restored (pickled) copy has its own globals

            history = RUNGS.get(key, {}).get(trial.trial_id, {})
            for milestone, recorded in self._trial_info[trial.trial_id]._rungs:
                if milestone in history and trial.trial_id not in recorded:
                    recorded[trial.trial_id] = self._metric_op * history[milestone]

    return ResumableASHA(time_attr="epoch", max_t=epochs, grace_period=grace, reduction_factor=3)


def progress_callback(key: str, epochs: int) -> Any:
    """Feeds :data:`PROGRESS` ``[key]`` from Tune: every result, every ended trial, and a heartbeat from the
    controller's loop. Holds only ``key``, so that the pickled copy a resumed search restores still works."""
    from ray.tune import Callback

    def live() -> SearchProgress | None:
        from autoaug.search.hooks import (
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



def drop_fetch_warnings(record: logging.LogRecord) -> bool:
    """Tune warns with file paths about trials without result files (pending ones of a restored search) while it
    builds a result grid whose per-trial frames autoaug does not read: not for the user."""
    return not record.getMessage().startswith("Failed to fetch metrics")


class _StorageFailures(logging.Filter):
    """Ray's reports of failed writes to the search folder (trial syncs, experiment state), each a traceback:
    kept off the user's screen, the first one remembered in :data:`STORAGE_FAILURE` (which stops the experiment,
    see :func:`storage_stopper`), and turned into one error once Tune has stopped."""

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


def storage_stopper() -> Any:
    """A Tune stopper that ends the experiment once a write to its storage failed (:class:`_StorageFailures`):
    nothing would be saved of the trials that went on."""
    from ray.tune import Stopper

    class StopOnStorageFailure(Stopper):
        def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
            return False

        def stop_all(self) -> bool:
            from autoaug.search.hooks import STORAGE_FAILURE  # a restored (pickled) copy has its own globals

            return bool(STORAGE_FAILURE)

    return StopOnStorageFailure()


def fit(tuner: Any, folder: Path) -> Any:
    """``tuner.fit()``, or ``None`` when Ctrl-C (or SIGUSR1) ended it. Tune returns normally then, and may count
    the trials it was running as terminated; its SIGINT handler, installed for the run from the main thread,
    puts the previous handler back when it fires, which tells. The previous handler is put back afterwards in
    any case, so that a later Ctrl-C (in the report) interrupts again. A failed write to ``folder`` (the
    experiment's storage) stops the experiment and raises ``OSError``."""
    before = signal.getsignal(signal.SIGINT)
    catches = threading.current_thread() is threading.main_thread() and not int(
        os.getenv("TUNE_DISABLE_SIGINT_HANDLER", "0"))
    analysis_log = logging.getLogger("ray.tune.analysis.experiment_analysis")
    analysis_log.addFilter(drop_fetch_warnings)
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
        analysis_log.removeFilter(drop_fetch_warnings)
        for log in storage_logs:
            log.removeFilter(watch)
        if catches:
            signal.signal(signal.SIGINT, before)


def restorable(folder: Path) -> bool:
    """Whether the Tune experiment in ``folder`` can be restored: Tune saved both the tuner and the experiment's
    state (a driver killed between the two leaves the tuner alone, which restores nothing: start anew)."""
    from ray import tune

    return tune.Tuner.can_restore(str(folder)) and any(folder.glob("experiment_state-*.json"))


def frame_of(grid: Any) -> Any:
    """One row per trial from its last result as Tune holds it in memory (``config/KEY`` columns as in
    ``ResultGrid.get_dataframe``, which rereads result files that PBT's pause-and-restore can leave short)."""
    import pandas as pd

    return pd.json_normalize([r.metrics for r in grid if r.metrics], sep="/")

