"""search.json: what a search was asked to do and what it found, read and written only here.

A search writes its record when it starts, again when Ctrl-C stops it (with its wall time so far) and when it
ends (with the best trial, the selection stage and the MLflow run); ``autoaug search --report`` notes where
the report went. Files written before the record had a version (version 1) still load.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from autoaug.errors import AutoaugError
from autoaug.files import write_text
from autoaug.search.budgets import RECIPE

VERSION = 2
RECORD_FILE = "search.json"
STUDY_FILE = "optuna.db"  # the search's Optuna study, beside its other files (optuna-dashboard opens it)
_GENERATOR_PREFIX = "generator_seconds."  # version 1 kept each generator's seconds in a key of its own


@dataclass(frozen=True)
class SearchRecord:
    """One search's settings (as resolved from its budget and arguments) and, once it has run, its results.

    ``optimizer``, ``lr``, ``weight_decay``, ``warmup``: the training recipe (``None`` in searches that recorded
    none: the training defaults). ``study``: the Optuna study's name (``None``: no study, as with PBT).
    ``points_seed``: the seed ``none`` and the standards trained with in the search, the selection's first (their
    run there is their selection run; ``None``: the search's own seed, as searches before recorded it).
    ``selection``: the selection stage's seeds, candidates, pick and paired comparison with ``none``.
    ``reported``: whether the report stage is over (``report``: its folder, ``None`` when none was asked for)."""

    dataset: str
    model: str
    trials: int
    epochs: int
    batch_size: int
    budget: str
    seed: int
    train_size: int | None = None
    image_size: int | None = None
    space: str | None = None
    scheduler: str = "asha"
    precision: str = "auto"
    compile: bool = False
    select: int = 0
    points_seed: int | None = None
    study: str | None = None
    weights: str | None = None
    optimizer: str | None = None
    lr: float | None = None
    weight_decay: float | None = None
    warmup: float | None = None
    report_seeds: int | None = None  # how many seeds its report trains, fixed before the first report's results
    wall_seconds: float | None = None
    generator_seconds: Mapping[str, float] = field(default_factory=dict)
    selection: Mapping[str, Any] | None = None
    best_val_acc: float | None = None
    best_trial_id: str | None = None
    mlflow_run_id: str | None = None
    tracking_uri: str | None = None
    reported: bool = False
    report: str | None = None
    version: int = VERSION

    def __post_init__(self) -> None:
        object.__setattr__(self, "generator_seconds", MappingProxyType(dict(self.generator_seconds)))

    @property
    def finished(self) -> bool:
        """Whether the search has named its best trial (its trials and selection are over)."""
        return self.best_val_acc is not None

    def settings(self) -> dict[str, Any]:
        """What the search was asked to do (the fields before its results), by name."""
        names = [f.name for f in dataclasses.fields(self)]
        return {name: getattr(self, name) for name in names[: names.index("warmup") + 1]}

    def recipe(self) -> dict[str, Any]:
        """The recorded training recipe (what a search recorded of ``optimizer``, ``lr``, ``weight_decay``,
        ``warmup``)."""
        return {key: getattr(self, key) for key in RECIPE if getattr(self, key) is not None}

    def replace(self, **changes: Any) -> SearchRecord:
        return dataclasses.replace(self, **changes)

    # ------------------------------------------------------------------------------------ serialization
    def to_dict(self) -> dict[str, Any]:
        """The JSON object: the settings first, then what the search found; unset results are left out."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["generator_seconds"] = dict(self.generator_seconds)
        d["selection"] = None if self.selection is None else dict(self.selection)
        reported = d.pop("reported")
        results = ("wall_seconds", "selection", "best_val_acc", "best_trial_id", "mlflow_run_id", "tracking_uri")
        out = {k: v for k, v in d.items() if not (k in results and v is None) and k != "report"}
        if not out["generator_seconds"]:
            del out["generator_seconds"]
        if reported:
            out["report"] = self.report
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SearchRecord:
        """A record from its JSON object, of this version or an older one."""
        d = dict(d)
        version = d.get("version", 1)
        if not isinstance(version, int) or not 1 <= version <= VERSION:
            raise AutoaugError(f"search record version {version!r} is not one this autoaug reads (1 to {VERSION})")
        seconds = dict(d.pop("generator_seconds", {}))
        seconds |= {k[len(_GENERATOR_PREFIX):]: d.pop(k) for k in list(d) if k.startswith(_GENERATOR_PREFIX)}
        names = {f.name for f in dataclasses.fields(cls)} - {"reported", "generator_seconds"}
        unknown = sorted(set(d) - names)
        if unknown:
            raise AutoaugError(f"unknown search record key {unknown[0]!r}; allowed: {', '.join(sorted(names))}")
        missing = [k for k in ("dataset", "model", "trials", "epochs", "batch_size", "budget", "seed") if k not in d]
        if missing:
            raise AutoaugError(f"the search record has no {missing[0]!r}")
        return cls(**{**d, "version": VERSION}, generator_seconds=seconds, reported="report" in d)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> SearchRecord:
        """The record in ``path`` (a search.json, or a search folder holding one)."""
        path = Path(path)
        path = path / RECORD_FILE if path.is_dir() else path
        try:
            d = json.loads(path.read_text())
        except FileNotFoundError:
            raise AutoaugError(f"{str(path.parent)!r} is not a search folder: it has no {RECORD_FILE}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise AutoaugError(f"{str(path)!r} is not valid JSON: {e}") from None
        if not isinstance(d, Mapping):
            raise AutoaugError(f"{str(path)!r} must hold a JSON object, got {type(d).__name__}")
        try:
            return cls.from_dict(d)
        except (AutoaugError, TypeError) as e:
            raise AutoaugError(f"{str(path)!r}: {e}") from None

    def to_file(self, folder: str | os.PathLike[str]) -> Path:
        """Write ``folder/search.json`` atomically; its path."""
        path = Path(folder) / RECORD_FILE
        write_text(path, json.dumps(self.to_dict(), indent=2))
        return path


def note_report(folder: str | os.PathLike[str], report: str | os.PathLike[str] | None) -> None:
    """Note in the finished search in ``folder`` that its report stage is over (``report``: the report's folder,
    ``None`` when none was asked for), so that ``--resume`` no longer picks it up."""
    record = SearchRecord.from_file(folder)
    record.replace(reported=True, report=None if report is None else str(report)).to_file(folder)
