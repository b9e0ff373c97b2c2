"""A finished search as an Optuna study (``optuna.db`` beside its other files), for Optuna's own views."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from autoaug.files import atomic
from autoaug.search.hooks import METRIC
from autoaug.search.record import STUDY_FILE
from autoaug.search.space import SearchSpace


def write_study(frame: Any, space: SearchSpace, folder: Path) -> None:
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
