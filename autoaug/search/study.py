"""A search as an Optuna study (``optuna.db`` beside its other files), for Optuna's own views.

The study is a view of the Tune experiment, never its source: :func:`live_study` adds each trial as it ends
(so ``optuna-dashboard`` can watch a running search), at most once per Tune trial id (a trial that ends again
after a resume is not added twice), and :func:`write_study` rewrites it from the finished search's table, so
that it always agrees with ``trials.csv``. The searcher's own study lives in memory and in Tune's checkpoints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from autoaug.files import atomic
from autoaug.search.hooks import METRIC
from autoaug.search.record import STUDY_FILE
from autoaug.search.space import SearchSpace

TRIAL_ID = "tune_trial_id"  # the user attribute of an Optuna trial that names its Tune trial


def frozen_trial(space: SearchSpace, params: dict[str, Any], state: str, value: float | None, epoch: int | None,
                 trial_id: str) -> Any:
    """A finished Optuna trial of ``params`` (replayed through ``space`` for their distributions) in ``state``
    (completed, pruned or failed), with ``value`` at ``epoch`` as its intermediate value."""
    import optuna
    from optuna.trial import TrialState

    fixed = optuna.trial.FixedTrial(params)
    space.suggest(fixed)
    state_of = {"completed": TrialState.COMPLETE, "pruned": TrialState.PRUNED, "failed": TrialState.FAIL}[state]
    known = value is not None and epoch is not None
    return optuna.trial.create_trial(
        params=fixed.params, distributions=fixed.distributions, state=state_of,
        value=value if state_of == TrialState.COMPLETE else None, user_attrs={TRIAL_ID: trial_id},
        intermediate_values={int(epoch): float(value)} if known and state_of != TrialState.FAIL else None)


def _open(path: Path, name: str) -> Any:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(study_name=name, storage=f"sqlite:///{path.resolve()}", direction="maximize",
                               load_if_exists=True)


def write_study(frame: Any, space: SearchSpace, folder: Path) -> None:
    """The search's trials (rows of ``frame``, with ``config/KEY`` columns) as the Optuna study named after
    ``folder`` in ``folder/optuna.db``, written anew."""
    import pandas as pd

    def known(v: Any) -> Any:
        return None if pd.isna(v) else v.item() if hasattr(v, "item") else v

    with atomic(folder / STUDY_FILE) as tmp:
        study = _open(tmp, folder.name)
        for _, row in frame.iterrows():
            params = {k[len("config/"):]: known(v) for k, v in row.items() if k.startswith("config/")}
            study.add_trial(frozen_trial(
                space, {k: v for k, v in params.items() if v is not None}, row.get("status", "completed"),
                known(row.get(METRIC)), known(row.get("epoch")), str(row.get("trial_id", ""))))


def live_study(folder: Path, space: SearchSpace, epochs: int) -> Any:
    """A Tune callback that adds each trial to ``folder/optuna.db`` as it ends: completed (all ``epochs``), pruned
    (ended earlier) or failed."""
    from ray.tune import Callback

    class LiveStudy(Callback):
        def _add(self, trial: Any, failed: bool) -> None:
            from autoaug.search.hooks import (
                STORAGE_FAILURE,  # the live registry: a pickled copy of this class has its own globals
            )

            if STORAGE_FAILURE:
                return
            result = trial.last_result or {}
            epoch = result.get("epoch")
            state = "failed" if failed else "completed" if (epoch or 0) >= epochs else "pruned"
            try:
                study = _open(folder / STUDY_FILE, folder.name)
                if any(t.user_attrs.get(TRIAL_ID) == trial.trial_id for t in study.get_trials(deepcopy=False)):
                    return  # ended again after a resume: the study has it
                study.add_trial(frozen_trial(space, dict(trial.config), state, result.get(METRIC), epoch,
                                             trial.trial_id))
            except Exception as e:  # the search folder stopped taking writes: the storage stopper ends the search
                while e.__cause__ is not None:  # the root cause (sqlite's), not the wrappers' messages
                    e = e.__cause__  # type: ignore[assignment]
                STORAGE_FAILURE.append(f"{STUDY_FILE}: {type(e).__name__}: {(str(e).strip() or '?').splitlines()[0]}")

        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            self._add(trial, failed=False)

        def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            self._add(trial, failed=True)

    return LiveStudy()
