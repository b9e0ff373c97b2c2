"""The report's seeds: a stream of their own, disjoint from the search's and the selection's, and a count fixed
before the first report's first result (search.json's ``report_seeds``)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence

import numpy as np

from autoaug.search.record import SearchRecord

STREAM = 0x5245504F  # the report's stream of seeds, apart from the search's (its seed and the ones after it)


def report_seeds(record: SearchRecord, n: int) -> list[int]:
    """The first ``n`` seeds of the report's stream for the search ``record``: six-digit numbers drawn from
    ``SeedSequence((record.seed, STREAM))``, without repeats and without the seeds the search and its selection
    trained with. A report on more seeds extends one on fewer (the stream is the same)."""
    taken = {record.seed, *((record.selection or {}).get("seeds", ()))}
    seeds: list[int] = []
    words = 2 * n + 8
    while len(seeds) < n:
        seeds = []
        for word in np.random.SeedSequence((record.seed, STREAM)).generate_state(words):
            seed = 100_000 + int(word) % 900_000
            if seed not in taken and seed not in seeds:
                seeds.append(seed)
        words *= 2
    return seeds[:n]


def preset_count(folder: str | os.PathLike[str], record: SearchRecord, n: int, echo: Callable[[str], None]) -> int:
    """The number of report seeds fixed for the search in ``folder``: its record's, or ``n`` where it has none yet
    (then written to its search.json, before any report result exists). A report on another count says so."""
    if record.report_seeds is None:
        with contextlib.suppress(OSError):  # a read-only copy of a search: the count holds for this report alone
            record.replace(report_seeds=n).to_file(folder)
        return n
    if n > record.report_seeds:
        echo(f"this search's report was fixed at {record.report_seeds} seeds before any result: the verdicts use "
             f"those, the {n - record.report_seeds} added seeds are shown apart")
    elif n < record.report_seeds:
        echo(f"this search's report was fixed at {record.report_seeds} seeds before any result: this one, on {n}, "
             "is partial")
    return record.report_seeds


def verdict_seeds(seeds: Sequence[int], preset: int) -> list[int]:
    """The seeds the verdicts use: the pre-set first ``preset`` (all of ``seeds`` when there are fewer)."""
    return list(seeds[:preset])
