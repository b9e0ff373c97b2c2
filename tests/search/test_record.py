"""search.json through ``SearchRecord``: round trips, clear errors, and a search written before the record had a
version (``data/old-search``, made by autoaug at 0ecb7b8) that still resumes and reports."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from autoaug.augment import Policy
from autoaug.errors import AutoaugError
from autoaug.search import SearchRecord, note_report, tune_policy
from autoaug.search.record import VERSION

OLD = Path(__file__).resolve().parent / "data" / "old-search"


def test_an_old_record_loads_and_round_trips(tmp_path: Path) -> None:
    assert "version" not in json.loads((OLD / "search.json").read_text())
    record = SearchRecord.from_file(OLD)
    assert record.version == VERSION and record.finished and not record.reported
    assert (record.dataset, record.epochs, record.select, record.study) == ("fashion_mnist_small", 1, 1, "old")
    assert record.recipe() == {"optimizer": "adam", "lr": 0.001, "weight_decay": 0.0}
    assert record.selection["seeds"] == [0, 1] and record.best_trial_id == record.selection["picked"]
    again = SearchRecord.from_file(record.to_file(tmp_path))
    assert again == record and json.loads((tmp_path / "search.json").read_text())["version"] == VERSION
    assert list(record.settings())[:3] == ["dataset", "model", "trials"] and "best_val_acc" not in record.settings()


def test_an_older_records_generator_seconds_and_a_noted_report() -> None:
    old = {"dataset": "d", "model": "m", "trials": 2, "epochs": 1, "batch_size": 8, "budget": "tiny", "seed": 0,
           "generator_seconds.vae": 12.5, "report": None}
    record = SearchRecord.from_dict(old)
    assert dict(record.generator_seconds) == {"vae": 12.5} and record.reported and record.report is None
    assert record.to_dict()["generator_seconds"] == {"vae": 12.5} and record.to_dict()["report"] is None
    assert "report" not in record.replace(reported=False).to_dict()  # the report stage is not over


@pytest.mark.parametrize(("text", "message"), [
    ('{"dataset": "d"}', "the search record has no 'model'"),
    ('{"dataset": "d", "model": "m", "trials": 1, "epochs": 1, "batch_size": 8, "budget": "tiny", "seed": 0, '
     '"colour": 1}', "unknown search record key 'colour'"),
    ('{"version": 9}', "search record version 9 is not one this autoaug reads (1 to 2)"),
    ("[1, 2]", "must hold a JSON object, got list"),
    ("{", "is not valid JSON"),
])
def test_a_bad_record_is_named(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "search.json").write_text(text)
    with pytest.raises(AutoaugError, match=re.escape(message)):
        SearchRecord.from_file(tmp_path)
    with pytest.raises(AutoaugError, match=r"is not a search folder: it has no search\.json"):
        SearchRecord.from_file(tmp_path / "elsewhere")


def test_an_old_search_resumes_and_reports(tmp_path: Path) -> None:
    from autoaug.report import make_report

    runs = tmp_path / "runs"
    shutil.copytree(OLD, runs / "old")
    lines: list[str] = []
    result = tune_policy("fashion_mnist_small", storage=runs, name="old", resume=True, echo=lines.append)
    assert any("has finished all its trials; its result is read back" in line for line in lines)
    assert result.best_policy == Policy.load(OLD / "best_policy.json") and len(result.trials) == 3
    assert result.record == SearchRecord.from_file(OLD)
    report = make_report(runs / "old", seeds=1, compare=["trivialaugment"], out=tmp_path / "reports",
                         num_cpus=2, cpus_per_trial=1, echo=lines.append)
    assert [row["policy"] for row in report.rows] == ["searched", "none", "trivialaugment"]
    assert "autoaug search fashion_mnist_small --budget tiny --seed 0" in (report.folder / "report.md").read_text()
    note_report(runs / "old", report.folder)
    with pytest.raises(AutoaugError, match="has finished and its report is in"):
        tune_policy("fashion_mnist_small", storage=runs, name="old", resume=True, echo=lines.append)
