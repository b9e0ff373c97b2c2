"""Selection that survives noise: before a search names its best policy, the top ``k`` completed sampled trials,
every standard point and ``none`` are scored on fresh seeds, all on the same ones (paired), and the best is the one
with the highest validation accuracy averaged over those seeds. ``none`` and the standards train on the first of
them in the search itself (their place among the candidates never depended on a score), so only the top trials
train again on it.

A single trial's score moves by a few tenths of a point from one seed to the next, as much as the policies differ,
so the best single-seed score is partly luck; the mean over fresh seeds is not. The search's own score chose the
top trials, so it does not vote (it would favour them: the winner's curse). The standards enter whatever their
score: ASHA does not stop them, and where a search trained them on its own seed (as searches before
``points_seed`` did), stopped or not, they train again on every fresh seed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from autoaug.search.space import SearchSpace
from autoaug.stats import Comparison, compare_paired

METRIC = "val_acc"
PREFIX = "selection."  # trials.csv columns of this stage


@dataclass(frozen=True)
class Selection:
    """The stage's outcome: each candidate trial's validation accuracy on each of the stage's fresh ``seeds``."""

    seeds: tuple[int, ...]
    scores: dict[str, list[float]]  # trial_id -> val_acc per seed, in the order of ``seeds``
    roles: dict[str, str]  # trial_id -> why it is a candidate: "top 1".., a standard's name, "none"
    runs: int = 0  # the runs the stage trained (the others the search trained on the first seed)

    @property
    def picked(self) -> str:
        """The trial with the best mean (the earlier candidate on a tie: a top trial before a standard)."""
        return max(self.scores, key=lambda t: sum(self.scores[t]) / len(self.scores[t]))

    def mean(self, trial_id: str) -> float:
        return sum(self.scores[trial_id]) / len(self.scores[trial_id])

    def versus_none(self) -> Comparison | None:
        """The picked trial minus ``none``, paired by seed; ``None`` without a ``none`` candidate or when ``none``
        was picked."""
        none = next((t for t, role in self.roles.items() if role == "none"), None)
        return compare_paired(self.scores[self.picked], self.scores[none]) if none not in (None, self.picked) else None

    def columns(self, frame: Any) -> Any:
        """``frame`` (trials) with this stage's columns: the candidate's role, its score per seed, its mean and
        whether it was picked (empty for trials that were not candidates)."""
        out = frame.copy()
        ids = list(out["trial_id"])
        out[f"{PREFIX}role"] = [self.roles.get(t, "") for t in ids]
        for i, seed in enumerate(self.seeds):
            out[f"{PREFIX}val_acc.seed{seed}"] = [self.scores[t][i] if t in self.scores else None for t in ids]
        out[f"{PREFIX}mean_val_acc"] = [self.mean(t) if t in self.scores else None for t in ids]
        picked = self.picked
        out[f"{PREFIX}picked"] = [t == picked for t in ids]
        return out

    def to_dict(self) -> dict[str, Any]:
        """What search.json records: seeds, picked trial and its mean, and the paired line against ``none``."""
        d: dict[str, Any] = {"seeds": list(self.seeds), "candidates": len(self.scores), "runs": self.runs,
                             "picked": self.picked, "picked_mean_val_acc": self.mean(self.picked)}
        vs = self.versus_none()
        if vs is not None:
            d["versus_none"] = {"mean": vs.mean, "low": vs.low, "high": vs.high, "n": vs.n, "verdict": vs.verdict}
        return d


def selection_table(trials: Any) -> tuple[list[str], list[list[str]]] | None:
    """The stage as a table from trials.csv's columns (``None`` for a search without it): each candidate's role,
    validation accuracy per seed and mean, the picked one marked."""
    role = f"{PREFIX}role"
    if role not in trials:
        return None
    rows = trials[trials[role].fillna("") != ""].sort_values(f"{PREFIX}mean_val_acc", ascending=False)
    seeds = [c for c in trials.columns if c.startswith(f"{PREFIX}val_acc.seed")]
    header = ["trial", "candidate as", *(f"seed {c[len(PREFIX) + len('val_acc.seed'):]}" for c in seeds), "mean",
              "picked"]
    return header, [[str(r["trial_id"]), str(r[role]), *(f"{r[c]:.4f}" for c in seeds),
                     f"{r[f'{PREFIX}mean_val_acc']:.4f}", "yes" if r[f"{PREFIX}picked"] else ""]
                    for _, r in rows.iterrows()]


def candidates(frame: Any, space: SearchSpace, k: int) -> dict[str, str]:
    """The trials to train again, by id, with their role: the ``k`` best completed sampled trials with distinct
    policies (a sampled trial that repeats a preset's policy is that preset's), and every standard point (a
    ``preset`` other than ``none``) and the ``none`` point that did not fail, completed or stopped by ASHA."""
    presets = frame[(frame["preset"].fillna("") != "")] if "preset" in frame else frame.iloc[:0]
    roles: dict[str, str] = {}
    seen = {_policy_key(row, space) for _, row in presets.iterrows()}
    sampled = frame[~frame["trial_id"].isin(presets["trial_id"]) & (frame["status"] == "completed")]
    for _, row in sampled.sort_values(METRIC, ascending=False, kind="stable").iterrows():
        key = _policy_key(row, space)
        if len(roles) < k and key not in seen:
            roles[row["trial_id"]] = f"top {len(roles) + 1}"
        seen.add(key)
    for name, rows in presets[presets["status"] != "failed"].groupby("preset", sort=False):
        roles[rows.sort_values(METRIC, ascending=False, kind="stable")["trial_id"].iloc[0]] = name
    return roles


def trained(frame: Any, roles: dict[str, str], seed: int | None) -> dict[str, float]:
    """The candidates' selection runs the search already trained: the completed trials of ``none`` and the
    standards where they trained on the selection's seed ``seed`` (``None``: they trained on the search's), by id."""
    if seed is None or "preset" not in frame:
        return {}
    done = frame[(frame["preset"].fillna("") != "") & (frame["status"] == "completed")]
    return {t: float(v) for t, v in zip(done["trial_id"], done[METRIC], strict=True) if t in roles}


def parameters(frame: Any, roles: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Each candidate's sampled parameters (its ``config/`` columns), by trial id."""
    import pandas as pd

    out = {}
    for trial_id in roles:
        row = frame[frame["trial_id"] == trial_id].iloc[0]
        out[trial_id] = {k[len("config/"):]: v.item() if hasattr(v, "item") else v
                         for k, v in row.items() if k.startswith("config/") and not pd.isna(v)}
    return out


def collect(rerun: Any, roles: dict[str, str], seeds: Sequence[int],
            trained_in_search: dict[str, float] | None = None, runs: int = 0) -> Selection:
    """The :class:`Selection` from the re-runs' frame ``rerun`` (``config/of``, ``config/seed``, ``val_acc`` of the
    last epoch) on ``seeds``, with the runs on the first seed the search trained (:func:`trained`). A candidate
    with a failed run is left out."""
    scores: dict[str, list[float]] = {}
    for trial_id in roles:
        own = rerun[rerun["config/of"] == trial_id] if len(rerun) else rerun
        by_seed = {int(r["config/seed"]): float(r[METRIC]) for _, r in own.iterrows()
                   if r.get("status") == "completed"}
        if trial_id in (trained_in_search or {}):
            by_seed[seeds[0]] = trained_in_search[trial_id]  # type: ignore[index]
        if all(s in by_seed for s in seeds):
            scores[trial_id] = [by_seed[s] for s in seeds]
    if not scores:
        raise RuntimeError("every re-run of the selection failed; see the trials' errors in the selection folder")
    return Selection(tuple(seeds), scores, {t: r for t, r in roles.items() if t in scores}, runs)


def _policy_key(row: Any, space: SearchSpace) -> str:
    """The policy a trial row stands for, as canonical JSON (two trials with one policy are one candidate)."""
    import pandas as pd

    params = {k[len("config/"):]: v for k, v in row.items() if k.startswith("config/") and not pd.isna(v)}
    return json.dumps(space.to_policy(params).to_dict(), sort_keys=True) + json.dumps(space.train_overrides(params))
