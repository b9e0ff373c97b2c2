"""Live progress: what the status says, and how often it speaks."""

from __future__ import annotations

import time

import pytest

from autoaug.progress import RunsProgress, SearchProgress, Status, duration
from autoaug.search.cluster import concurrent


def test_plain_status_lines_are_rate_limited_and_events_always_pass() -> None:
    lines: list[str] = []
    status = Status(lines.append, live=False, every=60)
    status.update("a")
    status.update("b")  # within the minute: dropped
    status.event("ended")
    status.update("c", force=True)
    assert lines == ["a", "ended", "c"]


def test_live_status_updates_one_line_in_place(capsys: pytest.CaptureFixture[str]) -> None:
    lines: list[str] = []
    status = Status(lines.append, live=True, every=0)
    status.update("one")
    status.update("two")
    status.event("kept")
    status.close()
    out = capsys.readouterr().out
    assert out == "one\r\x1b[Ktwo\r\x1b[Ktwo\r\x1b[K" and lines == ["kept"]


def test_search_progress_counts_and_estimates() -> None:
    lines: list[str] = []
    p = SearchProgress(total=4, epochs=10, status=Status(lines.append, every=0))
    p.t0 = time.perf_counter() - 100  # 100 s in
    p.result("aaaaaaa1", 4, 0.81)
    p.result("bbbbbbb2", 6, None)
    assert "running: aaaaa e4 0.810, bbbbb e6" in lines[-1] and "best —" in lines[-1]
    # 10 epochs in 100 s; left: 4 trials x 10 epochs - 10 running = 30 epochs at 0.1 epoch/s
    assert p.left() == pytest.approx(300, rel=0.01) and "at most ~5.0 min left" in lines[-1]
    p.ended("aaaaaaa1", "done", 10, 0.85)
    p.ended("bbbbbbb2", "pruned", 6, 0.70)
    assert any("trial 1/4 aaaaaaa1 done val_acc 0.8500" in line for line in lines)
    assert any("trial 2/4 bbbbbbb2 stopped early at epoch 6 val_acc 0.7000" in line for line in lines)
    assert "done 1, stopped early 1, failed 0 of 4 | best 0.8500" in lines[-1]
    p.result("404fd_00003", 2, 0.5)  # a grid's trials share their start: the end tells them apart
    assert "running: 00003 e2 0.500" in lines[-1]


def test_runs_progress_estimates_from_finished_runs() -> None:
    lines: list[str] = []
    p = RunsProgress(total=6, slots=2, status=Status(lines.append, every=0))
    p.tick()
    assert "0/6 done, 2 running" in lines[-1] and "left" not in lines[-1]
    p.ended(60.0, "none seed 1: test acc 0.9")
    assert "final 1/6: none seed 1" in lines[-2] and "~2.5 min left" in lines[-1]  # 5 runs x 60 s / 2 slots


def test_how_many_runs_fit_at_once() -> None:
    assert concurrent({"cpu": 1.0, "gpu": 0.0}, {"CPU": 2}) == 2
    assert concurrent({"cpu": 1.0, "gpu": 0.25}, {"CPU": 16, "GPU": 1}) == 4
    assert concurrent({"cpu": 4.0, "gpu": 0.0}, {"CPU": 2}) == 1
    assert duration(42) == "42 s" and duration(150) == "2.5 min" and duration(7200) == "2.0 h"
