"""The report's run journal: every finished final run, one JSON line each, kept beside the reports so that the same
report after a crash or Ctrl-C trains only the missing runs, and a report on more seeds only the new seeds."""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from autoaug.augment.policy import Policy
from autoaug.report.finished import FinishedSearch


def journal_path(reports: Path, found: FinishedSearch, policies: Sequence[Policy], settings: Any) -> Path:
    """The journal of the runs of ``policies`` with the final ``settings`` on ``found``, in the ``reports`` folder."""
    return reports / f".runs-{journal_key(found, policies, settings)}.jsonl"


def journal_key(found: FinishedSearch, policies: Sequence[Policy], settings: Any) -> str:
    """Runs are reused only for the same search, policies and training and evaluation settings (seed by seed)."""
    what = [str(found.folder), [p.to_dict() for p in policies], repr(settings)]
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()[:16]


def read_journal(path: Path) -> list[dict[str, Any]]:
    """The records a journal holds (a torn last line from a crash is skipped)."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            records.append(json.loads(line))
    return records


def append(path: Path, record: dict[str, Any]) -> None:
    """Add one finished run to the journal in ``path``."""
    with path.open("a") as f:
        f.write(json.dumps(record, default=str) + "\n")
