"""The report's document: its files, figures and blocks (rendered to Markdown and HTML by
:mod:`autoaug.report.document`)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from autoaug.augment.policy import Policy
from autoaug.data import DatasetSplits
from autoaug.report import plots, prose
from autoaug.report.document import Block, environment
from autoaug.report.finals import FinalSettings
from autoaug.report.finished import SEARCH_FILES, SEARCHED, FinishedSearch, trial_status
from autoaug.report.summary import diff, main_table, pm
from autoaug.search import STUDY_FILE, SearchRecord


def write_files(folder: Path, found: FinishedSearch, policies: Sequence[Policy], rows: list[dict[str, Any]],
                records: list[dict[str, Any]], quality: dict[str, Any] | None) -> None:
    """The comparison (CSV), every run (JSON), the policies, and a copy of the search's files (``search/``, from
    which ``autoaug report FOLDER/search`` makes the report again) into ``folder``."""
    import pandas as pd

    pd.DataFrame(rows).to_csv(folder / "comparison.csv", index=False)
    (folder / "runs.json").write_text(json.dumps({"search": found.record.to_dict(), "records": records,
                                                  "generators": quality}, indent=1, default=str))
    policies[0].save(folder / "best_policy.json")
    (folder / "policies").mkdir()
    for policy in policies[1:]:
        policy.save(folder / "policies" / f"{policy.name}.json")
    (folder / "search").mkdir()
    for name in (*SEARCH_FILES, STUDY_FILE):
        if (found.folder / name).exists():
            shutil.copy2(found.folder / name, folder / "search" / name)


def figures(folder: Path, found: FinishedSearch, data: DatasetSplits, best: Policy,
            groups: dict[str, list[dict[str, Any]]]) -> list[tuple[Path, str]]:
    """The report's PNG figures in ``folder``, each with its caption."""
    from autoaug.augment import Augmenter
    from autoaug.train.batches import to_float

    originals = to_float(data.train_x[:10])
    return [
        (plots.learning_curves(groups, folder / "learning_curves.png"),
         "Validation accuracy per epoch, mean ± std over seeds"),
        (plots.policy_bars(best, folder / "policy.png"), "The searched policy: magnitude and probability per op"),
        (plots.magnitudes(groups, folder / "magnitudes.png"),
         "Each op's magnitude at the start of every epoch, as logged (first seed)"),
        (plots.search_progress(found.trials, trial_status(found.trials, found.record.epochs),
                               folder / "search_progress.png"),
         "Search: each trial's validation accuracy when it ended"),
        (plots.confusion({k: summed_confusion(groups[k]) for k in ("none", SEARCHED) if k in groups},
                         data.classes, folder / "confusion.png"), "Test confusion matrices, summed over seeds"),
        (plots.robustness(groups, folder / "robustness.png"), "Test accuracy under common corruptions"),
        (plots.samples(originals, {f"searched, {p:.0%}": Augmenter(best, seed=1)(originals.clone(), progress=p)
                                   for p in (0.0, 0.5, 1.0)}
                       | {"trivialaugment": Augmenter("trivialaugment", seed=1)(originals.clone())},
                       folder / "samples.png"),
         "Training images and augmented copies (the same random draws at 0%, 50% and 100% of training)"),
    ]


def blocks(folder: Path, found: FinishedSearch, data: DatasetSplits, policies: list[Policy],
           groups: dict[str, list[dict[str, Any]]], rows: list[dict[str, Any]], records: list[dict[str, Any]],
           resources: dict[str, float], final_seconds: float, seeds: int, settings: FinalSettings, final: Path,
           quality: dict[str, Any] | None = None, decisive: Sequence[int] = ()) -> list[Block]:
    """The report's document (figures written into ``folder``, which becomes ``final``), with the synthetic-data
    section when ``quality`` is given. ``rows`` (the verdicts) are over the ``decisive`` seeds, the pre-set ones
    (default: every seed)."""
    s, best = found.record, policies[0]
    pictures = figures(folder, found, data, best, groups)
    trials, epochs = found.trials, s.epochs
    status = trial_status(trials, epochs)
    completed, stopped = int((status == "completed").sum()), int((status == "pruned").sum())
    failed = int(s.trials) - completed - stopped
    env = environment()
    base = settings.base
    tuned = " (as the best trial of the search used them)" if found.train_overrides() else ""
    if base.weights:  # fine-tuned, not trained from scratch
        tuned += (", fine-tuned from " + ("timm's pretrained weights" if base.weights == "hub" else
                                          f"the weights in `{base.weights}`") + " (new classifier)")
    seed_text = ", ".join(map(str, sorted({r["seed"] for r in records})))
    header, body = main_table(rows)
    n_text = ", ".join(f"{r['policy']} n = {r['n']}" for r in rows)
    out: list[Block] = [
        ("h1", f"autoaug report: {s.dataset}"),
        ("p", f"Test-set comparison of the searched policy with the other policies, each retrained on {seeds} seeds "
              f"({n_text}). Mean ± sample std over seeds; Δ is the difference to `none` paired by seed with its "
              "95% Student t interval, and the verdict says whether that interval excludes 0."),
        ("table", (header, body)),
        ("p", prose.verdict_sentence(rows) + prose.versus_best(groups, decisive)
              + prose.added_seeds(groups, decisive)),
        ("h2", "Policies"),
        ("table", (["policy", "how it augments", "ops"],
                   [[p.name, prose.mechanism(p) + prose.twin_note(p, records), ", ".join([*p.base, *p.ops]) or "—"]
                    for p in policies])),
        ("h2", "Setting"),
        ("p", f"Data: {data.summary()} (test split used only here). Model `{s.model}`, {epochs} epochs, batch "
              f"{s.batch_size}, {base.optimizer} with learning rate {base.lr:g} (cosine schedule"
              f"{f' after a linear warmup over {base.warmup:.0%} of the steps' if base.warmup else ''}) and weight "
              f"decay {base.weight_decay:g}{tuned}; every policy trains on the search's "
              f"training split ({len(data.train_y)} images) with the same seeds {seed_text}, "
              f"so runs differ by their augmentation only. The seeds come from the report's own stream: none is the "
              f"search's ({s.seed}){prose.selection_seeds(s)}, so the draws that put a trial on top are not "
              f"replayed. Robustness on the first {settings.robust_size} "
              "test images: "
              "6 corruptions x 5 severities (CIFAR-10-C levels; each severity on its own fifth of them, the same for "
              f"every run) and FGSM with epsilon {settings.fgsm_epsilon:.4f} "
              f"(= {settings.fgsm_epsilon * 255:.0f}/255). Runs compute in {prose.precisions(records)}."),
        ("h2", "Cost"),
        ("table", (["policy", "train s (mean, with validation)", "evaluation s", "augmenting", "peak memory MB",
                    "CPU use"],
                   [[r["policy"], f"{r['train_seconds_mean']:.1f} ± {r['train_seconds_std']:.1f}",
                     f"{r['eval_seconds_mean']:.1f}", f"{100 * r['aug_share_mean']:.1f}%",
                     f"{r['peak_memory_mb_mean']:.0f}",
                     "n/a (GPU)" if r["cpu_util_mean"] != r["cpu_util_mean"] else f"{100 * r['cpu_util_mean']:.0f}%"]
                    for r in rows])),
        ("p", f"{prose.generator_sentence(s)}Search: {prose.duration(s.wall_seconds)} wall time for {s.trials} "
              f"trials ({completed} "
              f"completed, {stopped} stopped early by {s.scheduler.upper()}, {failed} failed), budget "
              f"`{s.budget}`, seed {s.seed}. Final training: {prose.duration(final_seconds)} wall time for "
              f"{prose.trained_runs(records)}, {resources['cpu']:g} CPU and {resources['gpu']:g} GPU each, as many at "
              f"a time as the machine holds (so a run's seconds also depend on what ran beside it). Peak memory is "
              "each run's worker process (resident set) on the CPU, allocated tensor memory on a GPU; CPU use is "
              "CPU time over wall time and the run's threads." + prose.search_cost(found, rows)),
        ("h2", "Search"),
        ("p", prose.search_sentence(found)),
        *selection_blocks(found),
        ("pre", best.to_json()),
    ]
    out += [("img", fig) for fig in pictures]
    if s.study and (found.folder / STUDY_FILE).exists():
        out += [("h2", "The search in Optuna's views"),
                   ("p", f"Open the study itself, from the folder that holds this report's folder, with "
                         f"`optuna-dashboard sqlite:///{final.name}/search/{STUDY_FILE}` (study `{s.study}`)."),
                   *(("img", fig) for fig in plots.optuna_views(found.folder / STUDY_FILE, s.study, folder))]
    if quality is not None:
        from autoaug.report.ablation import synthetic_blocks

        also = (SEARCHED,) if s.generator_seconds else ()  # the search chose a ratio: show it beside the others
        out += synthetic_blocks(folder, data, policies, rows, quality, also=also)
    out += [
        ("h2", "Robustness"),
        ("table", (["policy", "corruption acc", "Δ vs none [95% CI]", "verdict", "FGSM acc", "Δ vs none [95% CI]",
                    "verdict"],
                   [[r["policy"], pm(r, "corruption_acc"), diff(r, "corruption_acc"),
                     r.get("corruption_acc_verdict", "—"), pm(r, "fgsm_acc"), diff(r, "fgsm_acc"),
                     r.get("fgsm_acc_verdict", "—")] for r in rows])),
        ("table", corruption_table(groups)),
        ("h2", "Every run"),
        ("table", (["policy", "seed", "test acc", "macro P", "macro R", "macro F1", "loss", "train acc", "FGSM acc",
                    "train s"],
                   [[r["policy"], str(r["seed"])] + ([f"FAILED: {r['error']}"] + [""] * 8 if "error" in r else
                    [f"{r['test'][k]:.4f}" for k in ("acc", "precision", "recall", "f1", "loss")]
                    + [f"{r['train_acc']:.4f}", f"{r['fgsm_acc']:.4f}", f"{r['train_seconds']:.1f}"])
                    for r in records])),
        ("h2", "Reproduce"),
        ("pre", prose.reproduce(found, seeds, final, policies[1:], data.image_shape)),
        ("h2", "Environment"),
        ("table", (["what", "value"], [[k, v] for k, v in env.items()])),
    ]
    return out


def selection_blocks(found: FinishedSearch) -> list[Block]:
    """The search's selection stage (:mod:`autoaug.search.selection`): its table and the paired line against
    ``none``."""
    from autoaug.search import selection_table

    chosen, rows = found.record.selection, selection_table(found.trials)
    if not chosen or rows is None:
        return []
    picked_as = next(row[1] for row in rows[1] if row[-1] == "yes")
    line = versus_none(chosen.get("versus_none"), picked_as)
    return [("p", f"Selection: {selection_how(found.record)} {line}"), ("table", rows),
            ("p", "The searched policy:")]


def versus_none(vs: dict[str, Any] | None, picked_as: str) -> str:
    """The selection's paired difference of the picked policy to ``none`` (``vs``: mean, low, high, n, verdict),
    in words; one fresh seed gives a difference but no interval."""
    if not vs:
        return f"The picked trial is the `{picked_as}` point."
    if vs["n"] < 2:
        return (f"On the search's validation split the picked policy is {vs['mean']:+.4f} over `none` on the one "
                "fresh seed (one seed gives no interval).")
    return (f"On the search's validation split the picked policy is {vs['mean']:+.4f} over `none` [95% CI "
            f"{vs['low']:+.4f}, {vs['high']:+.4f}] (n = {vs['n']}, paired by seed): {vs['verdict']}.")


def selection_how(record: SearchRecord) -> str:
    """How the selection stage of ``record`` scored its candidates, in words."""
    seeds, own = list(record.selection["seeds"]), record.seed  # type: ignore[index]
    listed = ", ".join(map(str, seeds))
    if own in seeds:  # the earliest records: the search's own seed voted
        return (f"before naming the best, these trials trained again on seeds {', '.join(map(str, seeds[1:]))} (the "
                f"search used seed {own}), and the best mean validation accuracy over the {len(seeds)} seeds was "
                "picked.")
    if record.points_seed is None:
        return (f"before naming the best, these trials trained again on seed{'s' * (len(seeds) > 1)} {listed} (the "
                f"search used seed {own}), and the best mean validation accuracy there was picked.")
    return (f"`none` and the standards trained on seed {record.points_seed} in the search itself, the best sampled "
            f"trials on the search's seed {own} and again on seed{'s' * (len(seeds) > 1)} {listed}; the best mean "
            "validation accuracy on the fresh seeds was picked (the search's own scores do not vote).")


def corruption_table(groups: dict[str, list[dict[str, Any]]]) -> tuple[list[str], list[list[str]]]:
    names = list(next(iter(groups.values()))[0]["corruptions"])
    rows = []
    for policy, runs in groups.items():
        cells = []
        for c in names:
            values = [sum(r["corruptions"][c].values()) / len(r["corruptions"][c]) for r in runs]
            cells.append(f"{sum(values) / len(values):.4f}")
        rows.append([policy, *cells])
    return ["policy (mean over severities 1–5)", *names], rows


def summed_confusion(runs: Sequence[dict[str, Any]]) -> list[list[int]]:
    import numpy as np

    return np.sum([np.asarray(r["test"]["confusion"]) for r in runs], axis=0).tolist()
