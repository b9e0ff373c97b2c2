"""The report's seeds: a stream of their own, disjoint from the search's and the selection's, and a count fixed
before the first result."""

from __future__ import annotations

from pathlib import Path

from autoaug.report.finished import SEARCHED
from autoaug.report.prose import added_seeds
from autoaug.report.seeds import preset_count, report_seeds, verdict_seeds
from autoaug.search import SearchRecord

RECORD = SearchRecord(dataset="d", model="m", trials=1, epochs=1, batch_size=1, budget="tiny", seed=0,
                      selection={"seeds": [1, 2]})


def test_the_stream_is_its_own_and_longer_reports_extend_shorter_ones() -> None:
    five = report_seeds(RECORD, 5)
    assert len(set(five)) == 5 and all(100_000 <= s < 1_000_000 for s in five)
    assert report_seeds(RECORD, 3) == five[:3]
    assert report_seeds(RECORD.replace(seed=7), 3) != five[:3]  # another search, other seeds
    taken = five[1]  # a selection seed that happens to be in the stream is skipped
    skipped = report_seeds(RECORD.replace(selection={"seeds": [taken]}), 4)
    assert taken not in skipped and skipped == [five[0], *five[2:5]]


def test_the_count_is_fixed_by_the_first_report(tmp_path: Path) -> None:
    RECORD.to_file(tmp_path)
    lines: list[str] = []
    assert preset_count(tmp_path, RECORD, 3, lines.append) == 3 and not lines
    fixed = SearchRecord.from_file(tmp_path)
    assert fixed.report_seeds == 3
    assert preset_count(tmp_path, fixed, 5, lines.append) == 3
    assert "fixed at 3 seeds before any result: the verdicts use those, the 2 added seeds" in lines[-1]
    assert preset_count(tmp_path, fixed, 2, lines.append) == 3 and "is partial" in lines[-1]
    assert verdict_seeds([11, 12, 13, 14, 15], 3) == [11, 12, 13]


def test_added_seeds_are_shown_apart_from_the_verdicts() -> None:
    def runs(accs: list[float]) -> list[dict]:
        return [{"seed": s, "test": {"acc": a}} for s, a in zip((11, 12, 13, 14), accs, strict=True)]

    groups = {"none": runs([0.5, 0.5, 0.5, 0.5]), SEARCHED: runs([0.6, 0.62, 0.61, 0.63])}
    text = added_seeds(groups, [11, 12])
    assert "Seeds 13, 14 were added after the report's 2 pre-set seeds" in text
    assert "over all 4 seeds the searched policy is +0.1150" in text
    assert added_seeds(groups, [11, 12, 13, 14]) == ""
