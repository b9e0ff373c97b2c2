"""Live progress of long commands: a compact status that updates in place in a terminal, plain lines elsewhere.

:class:`Status` writes; :class:`SearchProgress` keeps a search's state from Tune's per-result callbacks
(running trials with their epoch and validation accuracy, done / stopped early / failed, best so far, elapsed,
an estimate of the time left); :class:`RunsProgress` does the same for a batch of runs (the report's final
training).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

LIVE_EVERY = 1.0  # s between updates of a status line in a terminal
PLAIN_EVERY = 10.0  # s between plain status lines (logs, CI)


def duration(seconds: float) -> str:
    """``42 s``, ``3.5 min``, ``1.2 h``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


class Status:
    """Lines that stay (``event``) and a status that changes (``update``): in place on a terminal (``live``), else
    as a plain line at most every ``every`` seconds."""

    def __init__(self, echo: Callable[[str], None] = print, live: bool = False, every: float | None = None) -> None:
        self.echo, self.live = echo, live
        self.every = every if every is not None else (LIVE_EVERY if live else PLAIN_EVERY)
        self.last, self.shown = -math.inf, ""

    def event(self, text: str) -> None:
        self._clear()
        self.echo(text)
        if self.live and self.shown:
            sys.stdout.write(self.shown)
            sys.stdout.flush()

    def update(self, text: str, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last < self.every:
            return
        self.last = now
        if self.live:
            self._clear()
            self.shown = text
            sys.stdout.write(text)
            sys.stdout.flush()
        else:
            self.echo(text)

    def close(self) -> None:
        self._clear()
        self.shown = ""

    def _clear(self) -> None:
        if self.live and self.shown:
            sys.stdout.write("\r\x1b[K")
            sys.stdout.flush()


def _short(trial_id: str) -> str:
    """A trial's id, short: Optuna's trials differ from the start (``a1f5c5ee``), a grid's at the end
    (``404fd_00003``)."""
    return trial_id.rsplit("_", 1)[-1] if "_" in trial_id else trial_id[:5]


@dataclass
class SearchProgress:
    """A search of ``total`` trials of up to ``epochs`` epochs, as Tune reports it."""

    total: int
    epochs: int
    status: Status
    running: dict[str, tuple[int, float | None]] = field(default_factory=dict)  # trial -> (epoch, val_acc)
    done: int = 0
    pruned: int = 0
    failed: int = 0
    ended_epochs: int = 0  # epochs trained by trials that ended
    best: float = math.nan
    t0: float = field(default_factory=time.perf_counter)

    def result(self, trial: str, epoch: int, acc: float | None) -> None:
        self.running[trial] = (epoch, acc)
        self.status.update(self.line())

    def tick(self) -> None:
        self.status.update(self.line())

    def ended(self, trial: str, outcome: str, epoch: int, acc: float | None, why: str = "") -> None:
        """``outcome``: done, pruned or failed (``why``: the error)."""
        self.running.pop(trial, None)
        self.ended_epochs += epoch
        setattr(self, outcome, getattr(self, outcome) + 1)
        if outcome == "done" and acc is not None and not (self.best >= acc):
            self.best = acc
        what = {"done": "done", "pruned": f"stopped early at epoch {epoch}", "failed": f"FAILED ({why})"}[outcome]
        score = f" val_acc {acc:.4f}" if acc is not None else ""
        self.status.event(f"[{self.elapsed():>6}] trial {self.done + self.pruned + self.failed}/{self.total} {trial} "
                          f"{what}{score}")
        self.status.update(self.line(), force=True)

    def elapsed(self) -> str:
        return duration(time.perf_counter() - self.t0)

    def left(self) -> float | None:
        """Seconds left if every trial not ended ran all its epochs (an upper bound: ASHA stops some early), at the
        rate of epochs trained so far."""
        trained = self.ended_epochs + sum(e for e, _ in self.running.values())
        if trained == 0:
            return None
        rate = trained / (time.perf_counter() - self.t0)
        ended = self.done + self.pruned + self.failed
        return max(0.0, ((self.total - ended) * self.epochs - sum(e for e, _ in self.running.values())) / rate)

    def line(self) -> str:
        runs = ", ".join(f"{_short(t)} e{e}" + (f" {a:.3f}" if a is not None else "")
                         for t, (e, a) in sorted(self.running.items())) or "starting"
        left = self.left()
        eta = f" | at most ~{duration(left)} left" if left is not None else ""
        best = f"{self.best:.4f}" if self.best == self.best else "—"
        return (f"[{self.elapsed():>6}] running: {runs} | done {self.done}, stopped early {self.pruned}, failed "
                f"{self.failed} of {self.total} | best {best}{eta}")


@dataclass
class RunsProgress:
    """``total`` independent runs (the report's final training), of which ``slots`` run at a time."""

    total: int
    slots: int
    status: Status
    finished: list[float] = field(default_factory=list)  # seconds each finished run took
    t0: float = field(default_factory=time.perf_counter)

    def ended(self, seconds: float, text: str) -> None:
        self.finished.append(seconds)
        self.status.event(f"[{duration(time.perf_counter() - self.t0):>6}] final {len(self.finished)}/{self.total}: "
                          f"{text}")
        self.tick(force=True)

    def tick(self, force: bool = False) -> None:
        elapsed = time.perf_counter() - self.t0
        running = min(self.slots, self.total - len(self.finished))
        eta = ""
        if self.finished:
            per_run = sum(self.finished) / len(self.finished)
            eta = f" | ~{duration(per_run * (self.total - len(self.finished)) / self.slots)} left"
        self.status.update(f"[{duration(elapsed):>6}] final runs: {len(self.finished)}/{self.total} done, {running} "
                           f"running{eta}", force=force)
