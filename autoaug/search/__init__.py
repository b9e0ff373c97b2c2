"""Search: budgets, the search space, the Ray Tune run with Optuna and ASHA (or PBT), trials, the selection
stage, the cluster, MLflow tracking, and the search's record (search.json). ``tune_policy`` drives it."""

from __future__ import annotations

from autoaug.lazy import attach

__getattr__, __dir__ = attach(__name__, {
    "tune_policy": "driver", "SearchResult": "driver",
    "SearchSettings": "settings", "resolve": "settings", "RESUMABLE": "settings",
    "Budget": "budgets", "BUDGETS": "budgets",
    "SearchRecord": "record", "RECORD_FILE": "record", "STUDY_FILE": "record", "note_report": "record",
    "SearchSpace": "space", "load_space": "space", "space_for_dataset": "settings",
    "Selection": "selection", "selection_table": "selection",
    # what the report runs on: Ray (start or join it, size and place a run, share the data) and MLflow
    "start_ray": "cluster", "trial_resources": "cluster", "concurrent": "cluster", "worker_device": "cluster",
    "node_id": "cluster", "pack": "cluster", "unpack": "cluster",
    "client_for": "tracking", "default_tracking_uri": "tracking", "store_of": "tracking",
    "dataset_input": "provenance", "code_tags": "provenance",
})
__all__ = __dir__()
