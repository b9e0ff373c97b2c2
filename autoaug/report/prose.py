"""The report's words: how a policy augments, the sentences on the verdicts, the search and its cost, and the
commands that reproduce it."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

from autoaug.augment.policy import Policy
from autoaug.report.finished import SEARCHED, FinishedSearch
from autoaug.search import SearchRecord
from autoaug.stats import compare_paired


def mechanism(policy: Policy) -> str:
    """In words: fixed, scheduled (kind, per op), feedback-controlled, AugNet or a replayed PBT lineage, and
    the synthetic share."""
    syn, mix = policy.synthetic, policy.mix
    mixed = f"; {syn.ratio:.0%} of every batch generated ({syn.generator})" if syn and syn.ratio > 0 else ""
    if mix is not None and policy.mixes:
        mixed += f"; {mix.kind} (alpha {mix.alpha:g}) on {mix.probability:.0%} of the batches, soft targets"
    return _augmenting(policy) + mixed


def describe(policy: Policy) -> str:
    """One line: how the policy augments, then its ops with magnitude and probability."""
    def ops(configs: Any) -> str:
        return ", ".join(f"{k} (m {c.magnitude:.2f}, p {c.probability:.2f})" for k, c in configs.items())

    parts = [mechanism(policy)]
    if policy.base:
        parts.append(f"base: {ops(policy.base)}")
    if policy.ops:
        parts.append(f"ops: {ops(policy.ops)}")
    return "; ".join(parts)


def _augmenting(policy: Policy) -> str:
    if not policy.augments:
        return "no augmentation"
    base = f"base {', '.join(policy.base)} (each with its probability)" if policy.base else ""
    subs = (f"one of {len(policy.subpolicies)} sub-policies per image (AutoAugment's form)"
            if policy.subpolicies else "")
    if not policy.ops and not policy.stages:
        return ", then ".join(part for part in (base, subs) if part)
    kind = policy.schedule.kind
    own = sorted({c.schedule.kind for c in policy.ops.values() if c.schedule is not None})
    held, every = policy.schedule.params.get("holdout"), policy.schedule.params.get("every")
    text = {"feedback": "feedback controller on validation loss"
                        + (f" every {every} batches" if every else " every epoch"),
            "augnet": f"AugNet, learned online on {held} held-out training images"}.get(
        kind, "fixed" if kind == "constant" else f"{kind} schedule")
    if own:
        text += f"; some ops keep their own {'/'.join(own)} schedule"
    if policy.stages:
        text += f"; {len(policy.stages) + 1} stages (a PBT lineage, replayed)"
    per_image = f"; {policy.n_ops} op{'s' if policy.n_ops > 1 else ''} per image" if policy.n_ops else ""
    return (f"{base}, then " if base else "") + text + per_image + (f", then {subs}" if subs else "")


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "unrecorded"
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def verdict_sentence(rows: Sequence[dict[str, Any]]) -> str:
    parts = []
    for r in rows:
        if "acc_verdict" in r:
            verdict = {"better": "is **better** than", "worse": "is **worse** than",
                       "no significant difference": "shows **no significant difference** from"}[r["acc_verdict"]]
            parts.append(f"`{r['policy']}` {verdict} `none` ({r['acc_diff']:+.4f} test accuracy)")
    return "In words: " + "; ".join(parts) + "." if parts else ""


def search_sentence(found: FinishedSearch) -> str:
    s, trials = found.record, found.trials
    epochs = s.epochs
    completed = trials[trials["epoch"] >= epochs]
    presets = trials[trials["preset"].fillna("") != ""] if "preset" in trials else trials.iloc[0:0]
    points = []
    for _, row in presets.iterrows():
        how = "completed" if row["epoch"] >= epochs else f"stopped by ASHA after epoch {row['epoch']}"
        points.append(f"the `{row['preset']}` point {row['val_acc']:.4f} ({how})")
    on = f" (on seed {s.points_seed})" if s.points_seed is not None else ""
    evaluated = f"; in the same search{on} {' and '.join(points)}" if points else ""
    if s.selection:
        return (f"{len(completed)} trials completed all {epochs} epochs{evaluated}. The searched policy reached "
                f"validation accuracy {s.best_val_acc:.4f}"
                + (f", its mean over {n} seeds." if (n := len(s.selection["seeds"])) > 1 else " on the fresh seed."))
    return (f"The best of {len(completed)} completed trials reached validation accuracy {s.best_val_acc:.4f} "
            f"after {epochs} epochs{evaluated}. The searched policy:")


def selection_seeds(record: SearchRecord) -> str:
    """`` or the selection's (1, 2)`` for a search with a selection stage, else ``""``."""
    seeds = (record.selection or {}).get("seeds")
    return f" or the selection's ({', '.join(map(str, seeds))})" if seeds else ""


def added_seeds(groups: dict[str, list[dict[str, Any]]], decisive: Collection[int]) -> str:
    """For a report on more seeds than were fixed: which, and the searched policy against ``none`` over all of
    them, apart from the verdicts (which use the ``decisive`` seeds)."""
    seeds = sorted({r["seed"] for runs in groups.values() for r in runs} - set(decisive))
    if not seeds or not decisive:
        return ""
    text = (f" Seeds {', '.join(map(str, seeds))} were added after the report's {len(decisive)} pre-set seeds; "
            "the table and the verdicts use the pre-set ones")
    mine, none = ({r["seed"]: r["test"]["acc"] for r in groups.get(name, [])} for name in (SEARCHED, "none"))
    both = sorted(set(mine) & set(none))
    if len(both) > 1:
        text += (f"; over all {len(both)} seeds the searched policy is "
                 f"{compare_paired([mine[k] for k in both], [none[k] for k in both])} against `none`")
    return text + "."


def versus_best(groups: dict[str, list[dict[str, Any]]], decisive: Collection[int] = ()) -> str:
    """The searched policy against the best compared one (highest mean test accuracy, ``none`` aside), paired by
    seed: the question whether the search was worth more than the best free standard. Over the ``decisive`` seeds
    (default: all)."""
    if decisive:
        groups = {name: [r for r in runs if r["seed"] in decisive] for name, runs in groups.items()}
    others = {name: runs for name, runs in groups.items() if name not in (SEARCHED, "none")}
    if SEARCHED not in groups or not others:
        return ""
    best = max(others, key=lambda name: sum(r["test"]["acc"] for r in others[name]) / len(others[name]))
    mine, theirs = ({r["seed"]: r["test"]["acc"] for r in groups[name]} for name in (SEARCHED, best))
    seeds = sorted(set(mine) & set(theirs))
    if not seeds:
        return ""
    if all(mine[k] == theirs[k] for k in seeds):
        return f" The searched policy is `{best}`, the best of the compared policies."
    vs = compare_paired([mine[k] for k in seeds], [theirs[k] for k in seeds])
    return (f" Against the best of the compared policies, `{best}` (highest mean test accuracy), the searched "
            f"policy is {vs}.")


def search_cost(found: FinishedSearch, rows: Sequence[dict[str, Any]]) -> str:
    """The search's whole cost in training runs: its epochs (trials and selection re-runs) over one run's, and its
    wall time over the mean training time of one final run of the searched policy."""
    s, trials = found.record, found.trials
    epochs = int(trials["epoch"].sum())
    fresh = [seed for seed in s.selection["seeds"] if seed != s.seed] if s.selection else []  # older records: own
    reruns = s.selection.get("runs", len(fresh) * s.selection["candidates"]) if s.selection else 0
    total = epochs + reruns * s.epochs
    searched = next((r for r in rows if r["policy"] == SEARCHED), None)
    text = (f" Whole search: {total} training epochs ({epochs} in its {len(trials)} trials"
            + (f", {reruns * s.epochs} in the selection's {reruns} re-run{'s' if reruns > 1 else ''}" if reruns else "")
            + f"), the work of {total / s.epochs:.1f} training runs of {s.epochs} epochs")
    if searched and s.wall_seconds:
        run = searched["train_seconds_mean"]
        text += (f"; its wall time is {s.wall_seconds / run:.1f}x the {run:.0f} s of one final run of the "
                 "searched policy")
    return text + "."


def generator_sentence(record: SearchRecord) -> str:
    """The generators a search trained for its synthetic ratio, with their training time (or nothing)."""
    if not record.generator_seconds:
        return ""
    return ("Generators trained for the search's synthetic images (once, reused by every trial): "
            + ", ".join(f"{kind} {duration(seconds)}" for kind, seconds in record.generator_seconds.items()) + ". ")


def trained_runs(records: Sequence[dict[str, Any]]) -> str:
    """How many runs were trained: the searched policy's runs are not counted again when they are a standard's."""
    twins = [r for r in records if "same_as" in r]
    text = f"{len(records) - len(twins)} runs"
    return text + (f" (the searched policy's {len(twins)} are `{twins[0]['same_as']}`'s)" if twins else "")


def twin_note(policy: Policy, records: Sequence[dict[str, Any]]) -> str:
    """For the searched policy when it equals a compared one: that its runs are that policy's."""
    twin = next((r["same_as"] for r in records if "same_as" in r), None) if policy.name == SEARCHED else None
    return f" (the same policy as `{twin}`: its runs are reused, not trained twice)" if twin else ""


def precisions(records: Sequence[dict[str, Any]]) -> str:
    """The precisions the runs computed in (older records hold none: float32)."""
    names = sorted({r.get("precision", "fp32") for r in records if "error" not in r})
    return " and ".join(f"`{n}`" for n in names) or "—"


def reproduce(found: FinishedSearch, seeds: int, report: Path, compared: Sequence[Policy],
               image_shape: Sequence[int]) -> str:
    """The search command with the settings that differ from its budget and the data (images of ``image_shape``),
    and the report command on the search files copied into ``report`` (``--compare`` where ``compared`` is not
    ``none`` and the standards for the data)."""
    from autoaug.augment.presets import PRESETS
    from autoaug.search import BUDGETS, load_space, space_for_dataset

    s = found.record
    b = BUDGETS[s.budget]
    args = [f"autoaug search {s.dataset} --budget {s.budget} --seed {s.seed}"]
    for key, budgeted in (("trials", b.trials), ("epochs", b.epochs), ("model", b.model),
                          ("train_size", b.train_size)):
        if getattr(s, key) != budgeted:
            args.append(f"--{key.replace('_', '-')} {getattr(s, key)}")
    if s.scheduler != "asha":
        args.append(f"--scheduler {s.scheduler}")
    if s.space and s.space != load_space(space_for_dataset(s.dataset, image_shape)).source:
        args.append(f"--space {s.space}")
    names = [p.name for p in compared]
    specs = [p.name if PRESETS.get(p.name) == p else f"{p.name}={_shown_path(report / 'policies' / f'{p.name}.json')}"
             for p in compared]
    usual = names == ["none", *found.standards(image_shape)] and specs == names
    compare = "" if usual else f" --compare {','.join(specs)}"
    return (" ".join(args) + f" --report-seeds {seeds}{compare}\n"
            "# the final training and the report alone, from the search's files copied beside this report:\n"
            f"autoaug report {_shown_path(report / 'search')} --seeds {seeds}{compare}")


def _shown_path(path: Path) -> str:
    """``path`` relative to the working directory when it lies below it, else absolute."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
