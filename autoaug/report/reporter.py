"""The reporter: retrain a search's best policy and the presets over seeds, compare them, write the report.

``make_report(search)`` takes a finished search folder (or its MLflow parent run id), runs the final
retrains (:mod:`autoaug.report.finals`) through Ray, logs each as an MLflow run nested under the search's parent run
(tags ``autoaug.role=final``, ``autoaug.policy=NAME``), and writes ``REPORTS/<dataset>-<timestamp>/``:
``report.md`` (the comparison table first), a self-contained ``report.html``, ``comparison.csv``,
``runs.json`` (every run's record) and the PNG figures. The folder appears whole or not at all.

Every policy is compared with ``none`` paired by seed: the mean difference of test accuracy with a 95%
Student t interval over the n seeds, and a verdict (better / no significant difference / worse).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from autoaug.augment.policy import Policy
from autoaug.augment.presets import resolve_policy, standards
from autoaug.errors import AutoaugError
from autoaug.progress import RunsProgress, Status
from autoaug.report.document import Block, environment, to_html, to_markdown
from autoaug.report.summary import by_policy, comparison_rows, diff, main_table, pm
from autoaug.search.driver import STUDY_FILE

SEARCHED = "searched"
RUN_ID = re.compile(r"^[0-9a-f]{32}$")
SEARCH_FILES = ("search.json", "trials.csv", "best_policy.json")


# ------------------------------------------------------------------------------------------------ the search
@dataclass(frozen=True)
class FinishedSearch:
    """What the reporter needs from a finished search."""

    folder: Path
    settings: dict[str, Any]  # search.json: dataset, model, epochs, batch_size, train_size, seed, budget, ...
    trials: Any  # pandas.DataFrame, trials.csv
    best: Policy
    parent_run_id: str | None
    tracking_uri: str | None

    def train_config(self, precision: str | None = None) -> Any:
        """The ``TrainConfig`` of the final runs: the search's model, schedule and recipe (its budget's optimizer,
        learning rate and weight decay; searched values where the space searched them)."""
        from autoaug.search.driver import RECIPE
        from autoaug.train.trainer import TrainConfig

        s = self.settings
        recipe = {k: s[k] for k in RECIPE if k in s}  # older searches recorded none: the defaults
        return TrainConfig(model=s["model"], epochs=s["epochs"], batch_size=s["batch_size"],
                           precision=precision or s.get("precision", "auto"), compile=s.get("compile", False),
                           **recipe | self.train_overrides())

    def train_overrides(self) -> dict[str, float]:
        """Training hyper-parameters the best trial used, where the space searched them (``train.*``)."""
        epochs = self.settings["epochs"]
        done = self.trials[self.trials["epoch"] >= epochs]
        picked = done[done["trial_id"] == self.settings.get("best_trial_id")] if "trial_id" in done else done.iloc[:0]
        row = picked.iloc[0] if len(picked) else done.loc[done["val_acc"].idxmax()]
        return {k[len("config/train."):]: float(v) for k, v in row.items() if k.startswith("config/train.")}


def load_search(search: str | os.PathLike[str], tracking_uri: str | None = None) -> FinishedSearch:
    """A search folder, or the MLflow parent run id of a search (its artifacts are downloaded)."""
    import pandas as pd

    folder = Path(search).expanduser()
    if not folder.is_dir():
        if not RUN_ID.match(str(search)):
            raise AutoaugError(f"search {str(search)!r} is neither a search folder nor an MLflow run id")
        folder = _download_search(str(search), tracking_uri)
    if not (folder / "search.json").exists():
        raise AutoaugError(f"{str(folder)!r} is not a search folder: it has no search.json")
    settings = json.loads((folder / "search.json").read_text())
    missing = [f for f in SEARCH_FILES if not (folder / f).exists()]
    if missing or "best_val_acc" not in settings:
        raise AutoaugError(f"search {str(search)!r} holds no finished trial (no {', '.join(missing) or 'best score'}); "
                           f"finish it with: autoaug search {settings.get('dataset', '')} --resume")
    record = folder / "mlflow.json"
    parent = json.loads(record.read_text()) if record.exists() else {}
    return FinishedSearch(folder.resolve(), settings, pd.read_csv(folder / "trials.csv"),
                          Policy.load(folder / "best_policy.json"), parent.get("parent_run_id"),
                          tracking_uri or parent.get("tracking_uri"))


def _download_search(run_id: str, tracking_uri: str | None) -> Path:
    from autoaug.search.tracking import client_for, default_tracking_uri

    uri = tracking_uri or default_tracking_uri()
    client = client_for(uri)
    try:
        client.get_run(run_id)
    except Exception:
        raise AutoaugError(f"MLflow run {run_id!r} does not exist in {uri}") from None
    folder = Path(tempfile.mkdtemp(prefix=f"autoaug-search-{run_id[:8]}-"))
    for name in (*SEARCH_FILES, STUDY_FILE):
        with contextlib.suppress(Exception):  # load_search names what is missing
            client.download_artifacts(run_id, name, str(folder))
    (folder / "mlflow.json").write_text(json.dumps({"parent_run_id": run_id, "tracking_uri": uri}))
    return folder


# ------------------------------------------------------------------------------------------------ the report
@dataclass(frozen=True)
class Report:
    """Where a report was written, and its comparison rows."""

    folder: Path
    rows: list[dict[str, Any]]
    records: list[dict[str, Any]]


def compared_policies(specs: Sequence[str]) -> list[Policy]:
    """Policies to compare with the searched one: preset names, ``NAME=FILE.json`` or ``FILE.json`` (named
    as in the file). ``none``, the reference, is always first."""
    out: list[Policy] = []
    for spec in ("none", *(s for s in specs if s != "none")):
        name, sep, source = spec.partition("=")
        policy = resolve_policy(source if sep else spec)
        policy = replace(policy, name=name if sep else policy.name)
        if not re.fullmatch(r"[A-Za-z0-9_.+-]+", policy.name) or policy.name == SEARCHED:
            raise AutoaugError(f"policy name {policy.name!r} must be letters, digits, '_', '.', '+' or '-' and not "
                               f"{SEARCHED!r}; name it with NAME=FILE.json")
        if any(p.name == policy.name for p in out):
            raise AutoaugError(f"policy name {policy.name!r} is given twice; name files with NAME=FILE.json")
        out.append(policy)
    return out


def make_report(search: str | os.PathLike[str], *, seeds: int = 3, out: str | os.PathLike[str] = "reports",
                compare: Sequence[str] | None = None,
                tracking_uri: str | None = None, cpus_per_trial: float | None = None,
                gpus_per_trial: float | None = None, robust_size: int = 500, address: str | None = None,
                num_cpus: int | None = None, precision: str | None = None,
                echo: Callable[[str], None] = print, live: bool = False) -> Report:
    """Retrain the best policy of ``search`` and the ``compare`` policies (:func:`compared_policies`) on ``seeds``
    seeds; write the report under ``out``. ``precision``: as the search computed, unless given."""
    if not isinstance(seeds, int) or seeds < 1:
        raise AutoaugError(f"seeds {seeds!r} must be a positive integer")
    if not isinstance(robust_size, int) or robust_size < 1:
        raise AutoaugError(f"robust size {robust_size!r} must be a positive integer")
    compared = compared_policies(compare) if compare is not None else None
    found = load_search(search, tracking_uri)
    s = found.settings
    out_root = Path(out).expanduser().resolve()
    out_root.mkdir(parents=True, exist_ok=True)

    from autoaug.data.datasets import folder_name, load_dataset
    from autoaug.report.finals import FinalSettings, run_finals
    from autoaug.search.cluster import concurrent, start_ray, trial_resources

    data = load_dataset(s["dataset"], train_size=s["train_size"], seed=s["seed"])
    if compared is None:
        compared = compared_policies(standards(data.image_shape))
    base = found.train_config(precision)
    settings = FinalSettings(base, robust_size=min(robust_size, len(data.test_y)))
    policies = [replace(found.best, name=SEARCHED), *compared]
    twin = twin_of(found.best, compared)
    trained = compared if twin else policies  # a compared policy equal to the searched one is trained once
    # the search trained every trial with seed s["seed"]: the finals use other seeds, so the best trial's lucky
    # draw (initialization, batch order, augmentation) does not carry over into the comparison
    seed_list = [s["seed"] + 1 + i for i in range(seeds)]
    echo(f"{data.summary()}; retraining {len(trained)} policies x {seeds} seeds "
         f"({base.model}, {base.epochs} epochs) and evaluating on the test split")
    if twin:
        echo(f"the searched policy is the same as {twin!r}: its runs serve both")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    folder = out_root / f"{folder_name(s['dataset'])}-{stamp}"
    for i in itertools.count(2):
        if not folder.exists():
            break
        folder = out_root / f"{folder_name(s['dataset'])}-{stamp}-{i}"
    tracker = _tracker(found, echo)
    # finished runs are journaled as they arrive and the journal is kept: the same report command after a crash
    # or Ctrl-C trains only the missing runs, and after a finished report remakes it without training; a report on
    # more seeds trains only the new seeds
    key = _journal_key(found, policies, settings)
    journal = out_root / f".runs-{key}.jsonl"
    earlier = [r for r in _read_journal(journal) if r["seed"] in seed_list]
    if earlier:
        echo(f"reusing {len(earlier)} of {len(trained) * seeds} finished runs from {journal} "
             "(delete it to train them again)")
    params = {k: v for k, v in base.to_dict().items() if k not in ("seed", "device")} | {"report": folder.name,
                                                                                          "journal": key}
    if tracker is not None and earlier:  # a report killed between a run's journal line and its MLflow run
        logged = tracker.logged(key) or set()
        for record in earlier:
            if (record["policy"], record["seed"]) not in logged:
                tracker.log_final(record, params)
    quality = None
    if any(p.synthetic for p in policies):  # train the generators here, so that the parallel runs only load them
        from autoaug.report.ablation import generator_quality

        quality = generator_quality(data, policies, seed_list, echo)
    before = max((r["elapsed"] for r in earlier), default=0.0)
    import ray

    started = start_ray(address, num_cpus)
    t0 = time.perf_counter()
    try:
        resources, mem_fraction = trial_resources(cpus_per_trial, gpus_per_trial)
        progress = RunsProgress(len(trained) * seeds - len(earlier), concurrent(resources), Status(echo, live))

        def on_record(record: dict[str, Any]) -> None:
            what = (f"FAILED ({record['error']})" if "error" in record else
                    f"test acc {record['test']['acc']:.4f}, {record['train_seconds']:.0f} s")
            progress.ended(record.get("wall_seconds", 0.0), f"{record['policy']} seed {record['seed']}: {what}")
            if "error" not in record:
                with journal.open("a") as f:
                    f.write(json.dumps({**record, "elapsed": before + time.perf_counter() - t0}, default=str) + "\n")
            if tracker is not None:  # a lost server loses only the MLflow copy: the record stays in the report
                tracker.log_final(record, params)

        records = run_finals(trained, seed_list, data, settings, resources=resources,
                             gpu_memory_fraction=mem_fraction, on_record=on_record, on_wait=progress.tick,
                             skip={(r["policy"], r["seed"]) for r in earlier})
        progress.status.close()
    finally:
        if started:
            ray.shutdown()
    records = [{k: v for k, v in r.items() if k != "elapsed"} for r in earlier] + records
    if twin:
        records += [{**r, "policy": SEARCHED, "same_as": twin} for r in records if r["policy"] == twin]
    final_seconds = before + time.perf_counter() - t0
    order = [p.name for p in policies]
    records.sort(key=lambda r: (order.index(r["policy"]), r["seed"]))
    groups = by_policy(records, order)
    if "none" not in groups:
        raise AutoaugError("every final run of the 'none' policy failed: nothing to compare with")
    rows = comparison_rows(groups)

    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=out_root))
    staging.chmod(0o755)  # mkdtemp makes it private; the report is an ordinary folder
    try:
        blocks = _write(staging, found, data, policies, groups, rows, records, resources, final_seconds, seeds,
                        settings, folder, quality)
        (staging / "report.md").write_text(to_markdown(blocks))
        (staging / "report.html").write_text(to_html(blocks, f"autoaug report: {s['dataset']}"))
        os.replace(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if tracker is not None:
        tracker.log_report(folder, f"report/{folder.name}")
    echo(f"report: {folder / 'report.md'} (and report.html)")
    return Report(folder, rows, records)


def twin_of(best: Policy, compared: Sequence[Policy]) -> str | None:
    """The name of the compared policy that augments exactly as the searched one ``best`` does, if any."""
    return next((p.name for p in compared if replace(best, name=p.name) == p), None)


def _journal_key(found: FinishedSearch, policies: Sequence[Policy], settings: Any) -> str:
    """Runs are reused only for the same search, policies and training and evaluation settings (seed by seed)."""
    import hashlib

    what = [str(found.folder), [p.to_dict() for p in policies], repr(settings)]
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _read_journal(path: Path) -> list[dict[str, Any]]:
    """The records a journal holds (a torn last line from a crash is skipped)."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            records.append(json.loads(line))
    return records


def _tracker(found: FinishedSearch, echo: Callable[[str], None]) -> Any:
    if found.parent_run_id is None or found.tracking_uri is None:
        echo(f"note: {found.folder} records no MLflow run (no mlflow.json); the final runs are not tracked")
        return None
    from autoaug.search.tracking import FinalTracker

    return FinalTracker(found.tracking_uri, found.parent_run_id, echo)


def _write(folder: Path, found: FinishedSearch, data: Any, policies: list[Policy],
           groups: dict[str, list[dict[str, Any]]],
           rows: list[dict[str, Any]], records: list[dict[str, Any]], resources: dict[str, float],
           final_seconds: float, seeds: int, settings: Any, final: Path,
           quality: dict[str, Any] | None = None) -> list[Block]:
    """Figures, CSV, JSON and a copy of the search's files (``search/``) into ``folder``, which becomes
    ``final``; returns the document blocks (with the synthetic-data section when ``quality`` is given)."""
    import pandas as pd

    from autoaug.augment.augmenter import Augmenter
    from autoaug.report import plots
    from autoaug.train.batches import to_float

    s = found.settings
    pd.DataFrame(rows).to_csv(folder / "comparison.csv", index=False)
    (folder / "runs.json").write_text(json.dumps({"search": s, "records": records, "generators": quality}, indent=1,
                                                 default=str))
    best = policies[0]
    best.save(folder / "best_policy.json")
    (folder / "policies").mkdir()
    for policy in policies[1:]:
        policy.save(folder / "policies" / f"{policy.name}.json")
    (folder / "search").mkdir()
    for name in (*SEARCH_FILES, STUDY_FILE):  # the report can be made again from these: autoaug report FOLDER/search
        if (found.folder / name).exists():
            shutil.copy2(found.folder / name, folder / "search" / name)

    originals = to_float(data.train_x[:10])
    figures = [
        (plots.learning_curves(groups, folder / "learning_curves.png"),
         "Validation accuracy per epoch, mean ± std over seeds"),
        (plots.policy_bars(best, folder / "policy.png"), "The searched policy: magnitude and probability per op"),
        (plots.magnitudes(groups, folder / "magnitudes.png"),
         "Each op's magnitude at the start of every epoch, as logged (first seed)"),
        (plots.search_progress(found.trials, trial_status(found.trials, s["epochs"]), folder / "search_progress.png"),
         "Search: each trial's validation accuracy when it ended"),
        (plots.confusion({k: _summed_confusion(groups[k]) for k in ("none", SEARCHED) if k in groups},
                         data.classes, folder / "confusion.png"), "Test confusion matrices, summed over seeds"),
        (plots.robustness(groups, folder / "robustness.png"), "Test accuracy under common corruptions"),
        (plots.samples(originals, {f"searched, {p:.0%}": Augmenter(best, seed=1)(originals.clone(), progress=p)
                                   for p in (0.0, 0.5, 1.0)}
                       | {"trivialaugment": Augmenter("trivialaugment", seed=1)(originals.clone())},
                       folder / "samples.png"),
         "Training images and augmented copies (the same random draws at 0%, 50% and 100% of training)"),
    ]

    trials, epochs = found.trials, s["epochs"]
    status = trial_status(trials, epochs)
    completed, stopped = int((status == "completed").sum()), int((status == "pruned").sum())
    failed = int(s["trials"]) - completed - stopped
    env = environment()
    base = settings.base
    tuned = " (as the best trial of the search used them)" if found.train_overrides() else ""
    seed_text = ", ".join(map(str, sorted({r["seed"] for r in records})))
    header, body = main_table(rows)
    n_text = ", ".join(f"{r['policy']} n = {r['n']}" for r in rows)
    blocks: list[Block] = [
        ("h1", f"autoaug report: {s['dataset']}"),
        ("p", f"Test-set comparison of the searched policy with the other policies, each retrained on {seeds} seeds "
              f"({n_text}). Mean ± sample std over seeds; Δ is the difference to `none` paired by seed with its "
              "95% Student t interval, and the verdict says whether that interval excludes 0."),
        ("table", (header, body)),
        ("p", _verdict_sentence(rows) + _versus_best(groups)),
        ("h2", "Policies"),
        ("table", (["policy", "how it augments", "ops"],
                   [[p.name, mechanism(p) + _twin_note(p, records), ", ".join([*p.base, *p.ops]) or "—"]
                    for p in policies])),
        ("h2", "Setting"),
        ("p", f"Data: {data.summary()} (test split used only here). Model `{s['model']}`, {epochs} epochs, batch "
              f"{s['batch_size']}, {base.optimizer} with learning rate {base.lr:g} (cosine schedule) and weight decay "
              f"{base.weight_decay:g}{tuned}; every policy trains on the search's "
              f"training split ({len(data.train_y)} images) with the same seeds {seed_text}, "
              f"so runs differ by their augmentation only (the search trained every trial with seed {s['seed']}, "
              f"so the best trial's own draw is not among them). Robustness on the first {settings.robust_size} "
              "test images: "
              "6 corruptions x 5 severities (CIFAR-10-C levels; each severity on its own fifth of them, the same for "
              f"every run) and FGSM with epsilon {settings.fgsm_epsilon:.4f} "
              f"(= {settings.fgsm_epsilon * 255:.0f}/255). Runs compute in {_precisions(records)}."),
        ("h2", "Cost"),
        ("table", (["policy", "train s (mean, with validation)", "evaluation s", "augmenting", "peak memory MB",
                    "CPU use"],
                   [[r["policy"], f"{r['train_seconds_mean']:.1f} ± {r['train_seconds_std']:.1f}",
                     f"{r['eval_seconds_mean']:.1f}", f"{100 * r['aug_share_mean']:.1f}%",
                     f"{r['peak_memory_mb_mean']:.0f}",
                     "n/a (GPU)" if r["cpu_util_mean"] != r["cpu_util_mean"] else f"{100 * r['cpu_util_mean']:.0f}%"]
                    for r in rows])),
        ("p", f"{_generator_sentence(s)}Search: {_duration(s.get('wall_seconds'))} wall time for {s['trials']} "
              f"trials ({completed} "
              f"completed, {stopped} stopped early by {s.get('scheduler', 'asha').upper()}, {failed} failed), budget "
              f"`{s['budget']}`, seed {s['seed']}. Final training: {_duration(final_seconds)} wall time for "
              f"{len(records)} runs, {resources['cpu']:g} CPU and {resources['gpu']:g} GPU each, as many at a time as "
              f"the machine holds (so a run's seconds also depend on what ran beside it). Peak memory is "
              "each run's worker process (resident set) on the CPU, allocated tensor memory on a GPU; CPU use is "
              "CPU time over wall time and the run's threads." + _search_cost(found, rows)),
        ("h2", "Search"),
        ("p", _search_sentence(found)),
        *_selection_blocks(found),
        ("pre", best.to_json()),
    ]
    blocks += [("img", fig) for fig in figures]
    if s.get("study") and (found.folder / STUDY_FILE).exists():
        blocks += [("h2", "The search in Optuna's views"),
                   ("p", f"Open the study itself with `optuna-dashboard sqlite:///{folder.name}/search/{STUDY_FILE}` "
                         f"(study `{s['study']}`)."),
                   *(("img", fig) for fig in plots.optuna_views(found.folder / STUDY_FILE, s["study"], folder))]
    if quality is not None:
        from autoaug.report.ablation import synthetic_blocks

        also = (SEARCHED,) if _search_generators(s) else ()  # the search chose a ratio: show it beside the others
        blocks += synthetic_blocks(folder, data, policies, rows, quality, also=also)
    blocks += [
        ("h2", "Robustness"),
        ("table", (["policy", "corruption acc", "Δ vs none [95% CI]", "verdict", "FGSM acc", "Δ vs none [95% CI]",
                    "verdict"],
                   [[r["policy"], pm(r, "corruption_acc"), diff(r, "corruption_acc"),
                     r.get("corruption_acc_verdict", "—"), pm(r, "fgsm_acc"), diff(r, "fgsm_acc"),
                     r.get("fgsm_acc_verdict", "—")] for r in rows])),
        ("table", _corruption_table(groups)),
        ("h2", "Every run"),
        ("table", (["policy", "seed", "test acc", "macro P", "macro R", "macro F1", "loss", "train acc", "FGSM acc",
                    "train s"],
                   [[r["policy"], str(r["seed"])] + ([f"FAILED: {r['error']}"] + [""] * 8 if "error" in r else
                    [f"{r['test'][k]:.4f}" for k in ("acc", "precision", "recall", "f1", "loss")]
                    + [f"{r['train_acc']:.4f}", f"{r['fgsm_acc']:.4f}", f"{r['train_seconds']:.1f}"])
                    for r in records])),
        ("h2", "Reproduce"),
        ("pre", _reproduce(found, seeds, final, policies[1:], standards(data.image_shape))),
        ("h2", "Environment"),
        ("table", (["what", "value"], [[k, v] for k, v in env.items()])),
    ]
    return blocks


def _twin_note(policy: Policy, records: Sequence[dict[str, Any]]) -> str:
    """For the searched policy when it equals a compared one: that its runs are that policy's."""
    twin = next((r["same_as"] for r in records if "same_as" in r), None) if policy.name == SEARCHED else None
    return f" (the same policy as `{twin}`: its runs are reused, not trained twice)" if twin else ""


def _precisions(records: Sequence[dict[str, Any]]) -> str:
    """The precisions the runs computed in (older records hold none: float32)."""
    names = sorted({r.get("precision", "fp32") for r in records if "error" not in r})
    return " and ".join(f"`{n}`" for n in names) or "—"


def _search_generators(settings: dict[str, Any]) -> dict[str, float]:
    """The generators a search trained for its synthetic ratio (none: it did not search one), with their seconds."""
    return {k.split(".", 1)[1]: v for k, v in settings.items() if k.startswith("generator_seconds.")}


def _generator_sentence(settings: dict[str, Any]) -> str:
    """The generators a search trained for its synthetic ratio, with their training time (or nothing)."""
    spent = _search_generators(settings)
    if not spent:
        return ""
    return ("Generators trained for the search's synthetic images (once, reused by every trial): "
            + ", ".join(f"{kind} {_duration(seconds)}" for kind, seconds in spent.items()) + ". ")


def mechanism(policy: Policy) -> str:
    """In words: fixed, scheduled (kind, per op), feedback-controlled, AugNet or a replayed PBT lineage, and
    the synthetic share."""
    syn = policy.synthetic
    mixed = f"; {syn.ratio:.0%} of every batch generated ({syn.generator})" if syn and syn.ratio > 0 else ""
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
    if not policy.ops and not policy.stages:
        return base
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
    return (f"{base}, then " if base else "") + text + per_image


def trial_status(trials: Any, epochs: int) -> Any:
    """completed / pruned / failed per trial: from the ``status`` column where the search wrote one."""
    if "status" in trials:
        return trials["status"]
    return (trials["epoch"] >= epochs).map({True: "completed", False: "pruned"})


def _summed_confusion(runs: Sequence[dict[str, Any]]) -> list[list[int]]:
    import numpy as np

    return np.sum([np.asarray(r["test"]["confusion"]) for r in runs], axis=0).tolist()


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "unrecorded"
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def _verdict_sentence(rows: Sequence[dict[str, Any]]) -> str:
    parts = []
    for r in rows:
        if "acc_verdict" in r:
            verdict = {"better": "is **better** than", "worse": "is **worse** than",
                       "no significant difference": "shows **no significant difference** from"}[r["acc_verdict"]]
            parts.append(f"`{r['policy']}` {verdict} `none` ({r['acc_diff']:+.4f} test accuracy)")
    return "In words: " + "; ".join(parts) + "." if parts else ""


def _search_sentence(found: FinishedSearch) -> str:
    s, trials = found.settings, found.trials
    epochs = s["epochs"]
    completed = trials[trials["epoch"] >= epochs]
    presets = trials[trials["preset"].fillna("") != ""] if "preset" in trials else trials.iloc[0:0]
    points = []
    for _, row in presets.iterrows():
        how = "completed" if row["epoch"] >= epochs else f"stopped by ASHA after epoch {row['epoch']}"
        points.append(f"the `{row['preset']}` point {row['val_acc']:.4f} ({how})")
    evaluated = f"; in the same search {' and '.join(points)}" if points else ""
    if "selection" in s:
        return (f"{len(completed)} trials completed all {epochs} epochs{evaluated}. The searched policy reached "
                f"validation accuracy {s['best_val_acc']:.4f}, its mean over {len(s['selection']['seeds'])} seeds.")
    return (f"The best of {len(completed)} completed trials reached validation accuracy {s['best_val_acc']:.4f} "
            f"after {epochs} epochs{evaluated}. The searched policy:")


def _versus_best(groups: dict[str, list[dict[str, Any]]]) -> str:
    """The searched policy against the best compared one (highest mean test accuracy, ``none`` aside), paired by
    seed: the question whether the search was worth more than the best free standard."""
    from autoaug.stats import compare_paired

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


def _search_cost(found: FinishedSearch, rows: Sequence[dict[str, Any]]) -> str:
    """The search's whole cost in training runs: its epochs (trials and selection re-runs) over one run's, and its
    wall time over the mean training time of one final run of the searched policy."""
    s, trials = found.settings, found.trials
    epochs = int(trials["epoch"].sum())
    reruns = len(s["selection"]["seeds"][1:]) * s["selection"]["candidates"] if "selection" in s else 0
    total = epochs + reruns * s["epochs"]
    searched = next((r for r in rows if r["policy"] == SEARCHED), None)
    text = (f" Whole search: {total} training epochs ({epochs} in its {len(trials)} trials"
            + (f", {reruns * s['epochs']} in the selection's {reruns} re-runs" if reruns else "")
            + f"), the work of {total / s['epochs']:.1f} training runs of {s['epochs']} epochs")
    if searched and s.get("wall_seconds"):
        run = searched["train_seconds_mean"]
        text += (f"; its wall time is {s['wall_seconds'] / run:.1f}x the {run:.0f} s of one final run of the "
                 "searched policy")
    return text + "."


def _selection_blocks(found: FinishedSearch) -> list[Block]:
    """The search's selection stage (:mod:`autoaug.search.selection`): its table and the paired line against
    ``none``."""
    from autoaug.search.selection import table

    chosen, rows = found.settings.get("selection"), table(found.trials)
    if not chosen or rows is None:
        return []
    vs = chosen.get("versus_none")
    picked_as = next(row[1] for row in rows[1] if row[-1] == "yes")
    line = (f"On the search's validation split the picked policy is {vs['mean']:+.4f} over `none` [95% CI "
            f"{vs['low']:+.4f}, {vs['high']:+.4f}] (n = {vs['n']}, paired by seed): {vs['verdict']}." if vs
            else f"The picked trial is the `{picked_as}` point.")
    return [("p", f"Selection: before naming the best, these trials trained again on seeds "
                  f"{', '.join(map(str, chosen['seeds'][1:]))} (the search used seed {chosen['seeds'][0]}), and the "
                  f"best mean validation accuracy over the {len(chosen['seeds'])} seeds was picked. {line}"),
            ("table", rows), ("p", "The searched policy:")]


def _corruption_table(groups: dict[str, list[dict[str, Any]]]) -> tuple[list[str], list[list[str]]]:
    names = list(next(iter(groups.values()))[0]["corruptions"])
    rows = []
    for policy, runs in groups.items():
        cells = []
        for c in names:
            values = [sum(r["corruptions"][c].values()) / len(r["corruptions"][c]) for r in runs]
            cells.append(f"{sum(values) / len(values):.4f}")
        rows.append([policy, *cells])
    return ["policy (mean over severities 1–5)", *names], rows


def _reproduce(found: FinishedSearch, seeds: int, report: Path, compared: Sequence[Policy],
               default: Sequence[str]) -> str:
    """The search command with the settings that differ from its budget, and the report command on the
    search files copied into ``report`` (``--compare`` where ``compared`` is not ``none`` and the ``default``)."""
    from autoaug.augment.presets import PRESETS
    from autoaug.search.driver import BUDGETS

    s = found.settings
    b = BUDGETS[s["budget"]]
    args = [f"autoaug search {s['dataset']} --budget {s['budget']} --seed {s['seed']}"]
    for key, budgeted in (("trials", b.trials), ("epochs", b.epochs), ("model", b.model),
                          ("train_size", b.train_size)):
        if s.get(key) != budgeted:
            args.append(f"--{key.replace('_', '-')} {s[key]}")
    if s.get("scheduler", "asha") != "asha":
        args.append(f"--scheduler {s['scheduler']}")
    from autoaug.search.space import load_space, space_for_dataset

    if s.get("space") and s["space"] != load_space(space_for_dataset(s["dataset"])).source:
        args.append(f"--space {s['space']}")
    names = [p.name for p in compared]
    specs = [p.name if PRESETS.get(p.name) == p else f"{p.name}={_shown_path(report / 'policies' / f'{p.name}.json')}"
             for p in compared]
    compare = "" if names == ["none", *default] and specs == names else f" --compare {','.join(specs)}"
    return (" ".join(args) + f" --report-seeds {seeds}{compare}\n"
            "# the final training and the report alone, from the search's files copied beside this report:\n"
            f"autoaug report {_shown_path(report / 'search')} --seeds {seeds}{compare}")


def _shown_path(path: Path) -> str:
    """``path`` relative to the working directory when it lies below it, else absolute."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
