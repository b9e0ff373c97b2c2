"""The report's figures, one function per PNG. Each takes plain data (records, frames, policies) and a path."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from autoaug.augment.policy import Policy


def _figure(width: float = 7.0, height: float = 4.0, nrows: int = 1, ncols: int = 1) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(nrows, ncols, figsize=(width, height), squeeze=False)


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def learning_curves(records: Mapping[str, Sequence[dict[str, Any]]], path: Path) -> Path:
    """Validation accuracy per epoch, mean over seeds with a ±1 std band, one line per policy."""
    fig, ax = _figure()
    ax = ax[0, 0]
    for name, runs in records.items():
        validated = [[m for m in r["history"] if "val_acc" in m] for r in runs]  # the epochs that validated
        acc = np.array([[m["val_acc"] for m in h] for h in validated])
        epochs = np.array([m["epoch"] for m in validated[0]])
        mean, std = acc.mean(0), acc.std(0, ddof=1) if len(acc) > 1 else np.zeros(acc.shape[1])
        ax.plot(epochs, mean, marker="o", ms=2.5, label=f"{name} (n={len(acc)})",
                lw=2.2 if name in ("none", "searched") else 1.2)
        ax.fill_between(epochs, mean - std, mean + std, alpha=0.15)
    ax.set(xlabel="epoch", ylabel="validation accuracy", title="Learning curves: with vs without augmentation")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def policy_bars(policy: Policy, path: Path) -> Path:
    """Magnitude and probability of each op of ``policy``."""
    names = list(policy.ops) or ["(no ops)"]
    mags = [c.magnitude for c in policy.ops.values()] or [0.0]
    probs = [c.probability for c in policy.ops.values()] or [0.0]
    fig, ax = _figure(7.0, 0.8 + 0.35 * len(names))
    ax = ax[0, 0]
    y = np.arange(len(names))
    ax.barh(y - 0.2, mags, 0.4, label="magnitude")
    ax.barh(y + 0.2, probs, 0.4, label="probability")
    ax.set(yticks=y, yticklabels=names, xlim=(0, 1), xlabel="normalized value (autoaug ops shows the units)",
           title=f"Policy {policy.name!r}")
    ax.invert_yaxis()
    ax.legend(fontsize=8)
    return _save(fig, path)


def magnitudes(records: Mapping[str, Sequence[dict[str, Any]]], path: Path) -> Path:
    """Each op's magnitude at the start of every epoch (as logged, first seed), one panel per policy: a
    schedule's ramp, a controller's steps, AugNet's means, a PBT lineage's stages."""
    shown = {name: runs[0]["history"] for name, runs in records.items() if name != "none" and runs}
    cols = min(3, max(len(shown), 1))
    rows = -(-max(len(shown), 1) // cols)
    fig, axes = _figure(4.2 * cols, 3.0 * rows, rows, cols)
    for ax, (name, history) in zip(axes.flat, shown.items(), strict=False):
        ops = sorted({k.split("/", 1)[1] for m in history for k in m if k.startswith("magnitude/")})
        epochs = np.arange(1, len(history) + 1)
        for op in ops:
            ax.plot(epochs, [m.get(f"magnitude/{op}", np.nan) for m in history], lw=1.2, label=op)
        if "feedback/level" in history[0]:
            ax.step(epochs, [m["magnitude"] for m in history], "k--", where="post", lw=1, label="level")
        ax.set(title=name, xlabel="epoch", ylabel="magnitude", ylim=(-0.03, 1.03))
        ax.grid(alpha=0.3)
        if ops:
            ax.legend(fontsize=6, ncol=2)
        else:
            ax.text(0.5, 0.5, "no magnitudes logged", ha="center", transform=ax.transAxes)
    for ax in list(axes.flat)[len(shown):]:
        ax.axis("off")
    return _save(fig, path)


def ratio_curve(ratios: Sequence[float], rows: Sequence[dict[str, Any]], path: Path,
                labels: Sequence[str] | None = None) -> Path:
    """Test accuracy (mean ± std over seeds) against the synthetic ratio, each point named by ``labels``."""
    fig, ax = _figure(5.5, 3.4)
    ax = ax[0, 0]
    mean = [r["acc_mean"] for r in rows]
    std = [0.0 if r["acc_std"] != r["acc_std"] else r["acc_std"] for r in rows]
    ax.errorbar(ratios, mean, yerr=std, marker="o", capsize=3)
    named: dict[tuple[float, float], list[str]] = {}  # points at the same place share one label
    for x, y, label in zip(ratios, mean, labels or [], strict=False):
        named.setdefault((x, y), []).append(label)
    for (x, y), names in named.items():
        ax.annotate(", ".join(names), (x, y), textcoords="offset points", xytext=(4, 6), fontsize=8)
    ax.set(xlabel="synthetic share of every batch", ylabel="test accuracy", title="Test accuracy against the ratio")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def search_progress(trials: Any, status: Any, path: Path) -> Path:
    """Each trial's last validation accuracy against the time it ended, by ``status`` (completed / pruned /
    failed, one per row of ``trials``), and the best completed score so far."""
    fig, ax = _figure()
    ax = ax[0, 0]
    minutes = (trials["timestamp"] - (trials["timestamp"] - trials["time_total_s"]).min()) / 60
    for what, marker in (("completed", "o"), ("pruned", "x"), ("failed", "v")):
        rows = (status == what).to_numpy()
        if rows.any():
            ax.scatter(minutes[rows], trials.loc[rows, "val_acc"], marker=marker, label=what, zorder=3)
    done = (status == "completed").to_numpy()
    order = np.argsort(minutes[done].to_numpy())
    best = np.maximum.accumulate(trials.loc[done, "val_acc"].to_numpy()[order])
    ax.step(minutes[done].to_numpy()[order], best, where="post", label="best completed so far")
    ax.set(xlabel="minutes since the search started", ylabel="validation accuracy", title="Search progress")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def confusion(matrices: Mapping[str, Sequence[Sequence[int]]], classes: Sequence[str], path: Path) -> Path:
    """Row-normalized confusion matrices (true class per row), one panel per policy."""
    fig, axes = _figure(4.2 * len(matrices), 4.2, ncols=len(matrices))
    for ax, (name, cm) in zip(axes[0], matrices.items(), strict=True):
        m = np.asarray(cm, dtype=float)
        m = m / np.maximum(m.sum(1, keepdims=True), 1)
        ax.imshow(m, cmap="Blues", vmin=0, vmax=1)
        ticks = np.arange(len(classes))
        ax.set(xticks=ticks, yticks=ticks, xlabel="predicted", ylabel="true", title=name)
        ax.set_xticklabels([c[:8] for c in classes], rotation=90, fontsize=7)
        ax.set_yticklabels([c[:8] for c in classes], fontsize=7)
    return _save(fig, path)


def robustness(records: Mapping[str, Sequence[dict[str, Any]]], path: Path) -> Path:
    """Accuracy against corruption severity (mean over corruptions and seeds), one line per policy."""
    fig, ax = _figure(6.0, 3.6)
    ax = ax[0, 0]
    for name, runs in records.items():
        sev = sorted(next(iter(runs[0]["corruptions"].values())), key=int)
        acc = [np.mean([r["corruptions"][c][s] for r in runs for c in r["corruptions"]]) for s in sev]
        clean = np.mean([r["test"]["acc"] for r in runs])
        ax.plot([0, *map(int, sev)], [clean, *acc], marker="o", label=name)
    ax.set(xlabel="severity (0 = clean)", ylabel="test accuracy", title="Common corruptions")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def samples(images: Any, rows: Mapping[str, Any], path: Path) -> Path:
    """A grid: originals in the first row, then one row per entry of ``rows`` (augmented copies), each a
    float tensor ``[N, C, H, W]`` in ``[0, 1]``."""
    named = {"original": images, **rows}
    n = images.shape[0]
    fig, axes = _figure(1.1 * n + 1.2, 1.15 * len(named), nrows=len(named), ncols=n)
    for r, (label, batch) in enumerate(named.items()):
        for c in range(n):
            img = batch[c].permute(1, 2, 0).cpu().numpy()
            axes[r, c].imshow(img[..., 0] if img.shape[2] == 1 else img, cmap="gray", vmin=0, vmax=1)
            axes[r, c].set_xticks([])
            axes[r, c].set_yticks([])
        axes[r, 0].set_ylabel(label, fontsize=8)
    return _save(fig, path)


def optuna_views(storage: Path, study_name: str, folder: Path, top: int = 8) -> list[tuple[Path, str]]:
    """Optuna's views of a search's study (a sqlite file): optimization history, fANOVA parameter importances
    over completed trials, and a parallel-coordinates plot of the ``top`` most important dimensions."""
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    import optuna
    from optuna.importance import FanovaImportanceEvaluator
    from optuna.trial import TrialState
    from optuna.visualization import matplotlib as views

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=study_name, storage=f"sqlite:///{storage.resolve()}")
    completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    out: list[tuple[Path, str]] = []

    def save(ax: Any, name: str, caption: str, width: float = 8.0) -> None:
        ax.figure.set_size_inches(width, 4.5)
        out.append((_save(ax.figure, folder / name), caption))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the matplotlib views are marked experimental
        save(views.plot_optimization_history(study), "optuna_history.png",
             f"Optuna: optimization history ({len(completed)} completed trials; stopped ones are pruned)")
        varied = {k for t in completed for k in t.params if len({str(u.params.get(k)) for u in completed}) > 1}
        if len(completed) < 3 or not varied:
            return out
        try:
            importances = optuna.importance.get_param_importances(study, evaluator=FanovaImportanceEvaluator(seed=0),
                                                                  params=sorted(varied))
        except RuntimeError:  # fANOVA finds no variance to explain (e.g. every completed trial scored the same)
            return out
        save(views.plot_param_importances(study, evaluator=FanovaImportanceEvaluator(seed=0), params=sorted(varied)),
             "optuna_importances.png", "Optuna: parameter importances (fANOVA over completed trials)")
        shown = list(importances)[:top]
        save(views.plot_parallel_coordinate(study, params=shown), "optuna_parallel.png",
             f"Optuna: parallel coordinates of the {len(shown)} most important searched dimensions", width=11.0)
    return out
