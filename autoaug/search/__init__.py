"""Search: budgets, the search space, the Ray Tune run with Optuna and ASHA (or PBT), trials, the selection
stage, the cluster, MLflow tracking, and the search's record (search.json). ``tune_policy`` drives it."""

from __future__ import annotations

from autoaug.lazy import attach

__getattr__, __dir__ = attach(__name__, {
    "tune_policy": "driver", "SearchResult": "driver",
    "Budget": "budgets", "BUDGETS": "budgets",
    "SearchRecord": "record", "STUDY_FILE": "record", "note_report": "record",
    "SearchSpace": "space", "load_space": "space", "space_for_dataset": "space",
    "Selection": "selection", "selection_table": "selection",
})
__all__ = __dir__()
