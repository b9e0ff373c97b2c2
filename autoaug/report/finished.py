"""A finished search as the reporter reads it: its record, trials and best policy, from its folder or from the
files of its MLflow parent run."""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autoaug.augment.policy import Policy
from autoaug.augment.presets import standards
from autoaug.errors import AutoaugError
from autoaug.search import RECORD_FILE, STUDY_FILE, SearchRecord
from autoaug.train import TrainConfig

SEARCHED = "searched"  # the searched policy's name in a report
RUN_ID = re.compile(r"^[0-9a-f]{32}$")
SEARCH_FILES = (RECORD_FILE, "trials.csv", "best_policy.json")


@dataclass(frozen=True)
class FinishedSearch:
    """What the reporter needs from a finished search."""

    folder: Path
    record: SearchRecord  # search.json
    trials: Any  # pandas.DataFrame, trials.csv
    best: Policy
    parent_run_id: str | None
    tracking_uri: str | None

    def train_config(self, precision: str | None = None) -> TrainConfig:
        """The ``TrainConfig`` of the final runs: the search's model, schedule and recipe (its budget's optimizer,
        learning rate and weight decay; searched values where the space searched them)."""
        r = self.record  # older searches recorded no recipe: the defaults
        return TrainConfig(model=r.model, epochs=r.epochs, batch_size=r.batch_size,
                           precision=precision or r.precision, compile=r.compile, weights=r.weights,
                           **r.recipe() | self.train_overrides())

    def standards(self, image_shape: Sequence[int]) -> tuple[str, ...]:
        """The free standards for the data (images of ``image_shape``) and the bases of the search's space (the
        usual ones where the space's file is gone)."""
        from autoaug.search import load_space

        try:
            space = load_space(self.record.space) if self.record.space else None
        except AutoaugError:
            space = None
        return space.standards(image_shape) if space else standards(image_shape)

    def train_overrides(self) -> dict[str, float]:
        """Training hyper-parameters the best trial used, where the space searched them (``train.*``)."""
        epochs = self.record.epochs
        done = self.trials[self.trials["epoch"] >= epochs]
        picked = done[done["trial_id"] == self.record.best_trial_id] if "trial_id" in done else done.iloc[:0]
        row = picked.iloc[0] if len(picked) else done.loc[done["val_acc"].idxmax()]
        return {k[len("config/train."):]: float(v) for k, v in row.items() if k.startswith("config/train.")}


def load_search(search: str | os.PathLike[str], tracking_uri: str | None = None) -> FinishedSearch:
    """A search folder, or the MLflow parent run id of a search (its artifacts are downloaded)."""
    import pandas as pd

    folder = Path(search).expanduser()
    if not folder.is_dir():
        if not RUN_ID.match(str(search)):
            raise AutoaugError(f"search {str(search)!r} is neither a search folder nor an MLflow run id")
        folder = _download_search(str(search), tracking_uri)
    record = SearchRecord.from_file(folder)
    missing = [f for f in SEARCH_FILES if not (folder / f).exists()]
    if missing or not record.finished:
        raise AutoaugError(f"search {str(search)!r} holds no finished trial (no {', '.join(missing) or 'best score'}); "
                           f"finish it with: autoaug search {record.dataset} --resume")
    link = folder / "mlflow.json"
    parent = json.loads(link.read_text()) if link.exists() else {}
    return FinishedSearch(folder.resolve(), record, pd.read_csv(folder / "trials.csv"),
                          Policy.load(folder / "best_policy.json"), parent.get("parent_run_id"),
                          tracking_uri or parent.get("tracking_uri"))


def _download_search(run_id: str, tracking_uri: str | None) -> Path:
    from autoaug.search import client_for, default_tracking_uri

    uri = tracking_uri or default_tracking_uri()
    client = client_for(uri)
    try:
        client.get_run(run_id)
    except Exception:
        raise AutoaugError(f"MLflow run {run_id!r} does not exist in {uri}") from None
    folder = Path(tempfile.mkdtemp(prefix=f"autoaug-search-{run_id[:8]}-"))
    for name in (*SEARCH_FILES, STUDY_FILE):
        with contextlib.suppress(Exception):  # load_search names what is missing
            client.download_artifacts(run_id, name, str(folder))
    (folder / "mlflow.json").write_text(json.dumps({"parent_run_id": run_id, "tracking_uri": uri}))
    return folder


def trial_status(trials: Any, epochs: int) -> Any:
    """completed / pruned / failed per trial: from the ``status`` column where the search wrote one."""
    if "status" in trials:
        return trials["status"]
    return (trials["epoch"] >= epochs).map({True: "completed", False: "pruned"})
