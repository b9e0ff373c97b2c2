"""Per-policy summaries of final runs over seeds, paired with a reference policy, and their table cells.

``comparison_rows(by_policy(records, order))`` gives one row per policy: mean and sample std of every
metric in :data:`METRICS`, the paired difference to the reference (``none``) with its 95% Student t
interval and verdict for the metrics in :data:`COMPARED`, and the training time relative to the reference.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from autoaug.stats import compare_paired, mean_std

METRICS = {  # column -> how to read it from a run record
    "acc": lambda r: r["test"]["acc"],
    "precision": lambda r: r["test"]["precision"],
    "recall": lambda r: r["test"]["recall"],
    "f1": lambda r: r["test"]["f1"],
    "loss": lambda r: r["test"]["loss"],
    "gap": lambda r: r["gap"],
    "corruption_acc": lambda r: r["corruption_acc"],
    "fgsm_acc": lambda r: r["fgsm_acc"],
    "train_seconds": lambda r: r["train_seconds"],  # training and validation
    "eval_seconds": lambda r: r.get("eval_seconds", float("nan")),  # test metrics, robustness
    "aug_share": lambda r: r["aug_share"],
    "control_share": lambda r: r.get("control_share", 0.0),  # time in an adaptive controller
    "synthetic_time_share": lambda r: r.get("synthetic_time_share", 0.0),  # time generating images
    "peak_memory_mb": lambda r: r["peak_memory_mb"],
    "cpu_util": lambda r: r["cpu_util"],
}
COMPARED = ("acc", "corruption_acc", "fgsm_acc")  # paired with `none` by seed


def by_policy(records: Sequence[dict[str, Any]], order: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """Successful records grouped by policy in ``order`` (policies without one are left out), sorted by seed."""
    groups = {name: sorted((r for r in records if r["policy"] == name and "error" not in r), key=lambda r: r["seed"])
              for name in order}
    return {name: runs for name, runs in groups.items() if runs}


def comparison_rows(groups: dict[str, list[dict[str, Any]]], reference_name: str = "none") -> list[dict[str, Any]]:
    """One row per policy: mean and std of every metric over seeds, and the paired differences to the
    reference policy (``none``)."""
    rows = []
    reference = {r["seed"]: r for r in groups.get(reference_name, [])}
    for name, runs in groups.items():
        row: dict[str, Any] = {"policy": name, "n": len(runs), "seeds": " ".join(str(r["seed"]) for r in runs)}
        for key, read in METRICS.items():
            row[f"{key}_mean"], row[f"{key}_std"] = mean_std([read(r) for r in runs])
        paired = [r for r in runs if r["seed"] in reference]
        for key in COMPARED:
            if name == reference_name or not paired:
                continue
            c = compare_paired([METRICS[key](r) for r in paired], [METRICS[key](reference[r["seed"]]) for r in paired])
            row |= {f"{key}_diff": c.mean, f"{key}_ci_low": c.low, f"{key}_ci_high": c.high,
                    f"{key}_n_pairs": c.n, f"{key}_verdict": c.verdict}
        rows.append(row)
    plain = next((r["train_seconds_mean"] for r in rows if r["policy"] == reference_name), float("nan"))
    for row in rows:  # training time relative to the reference
        row["time_vs_none"] = row["train_seconds_mean"] / plain
    return rows


def pm(row: dict[str, Any], key: str, digits: int = 4) -> str:
    return f"{row[f'{key}_mean']:.{digits}f} ± {row[f'{key}_std']:.{digits}f}"


def diff(row: dict[str, Any], key: str) -> str:
    if f"{key}_diff" not in row:
        return "—"
    pairs = row[f"{key}_n_pairs"]
    if pairs == 1:
        return f"{row[f'{key}_diff']:+.4f} (1 pair, no interval)"
    text = f"{row[f'{key}_diff']:+.4f} [{row[f'{key}_ci_low']:+.4f}, {row[f'{key}_ci_high']:+.4f}]"
    return text if pairs == row["n"] else f"{text} ({pairs} pairs)"


def main_table(rows: Sequence[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """The report's first table: accuracy with its paired difference to ``none`` and verdict, F1, robustness, cost."""
    header = ["policy", "n", "test accuracy", "Δ vs none [95% CI]", "verdict", "macro F1", "corruption acc",
              "FGSM acc", "train − test acc", "train s", "time vs none", "aug share", "controller share"]
    body = [[r["policy"], str(r["n"]), pm(r, "acc"), diff(r, "acc"),
             r.get("acc_verdict", "reference" if r["policy"] == "none" else "no pairs"),
             pm(r, "f1"), pm(r, "corruption_acc"), pm(r, "fgsm_acc"), pm(r, "gap"),
             f"{r['train_seconds_mean']:.0f}", f"{r['time_vs_none']:.2f}x", f"{100 * r['aug_share_mean']:.1f}%",
             f"{100 * r['control_share_mean']:.1f}%"] for r in rows]
    return header, body
