"""The reporter: retrain a search's best policy and the presets over seeds, compare them, write the report.

``make_report(search)`` takes a finished search folder (or its MLflow parent run id), runs the final
retrains (:mod:`autoaug.report.finals`) through Ray, logs each as an MLflow run nested under the search's parent
run (tags ``autoaug.role=final``, ``autoaug.policy=NAME``), and writes ``REPORTS/<dataset>-<timestamp>/``:
``report.md`` (the comparison table first), a self-contained ``report.html``, ``comparison.csv``,
``runs.json`` (every run's record) and the PNG figures. The folder appears whole or not at all.

Every policy is compared with ``none`` paired by seed: the mean difference of test accuracy with a 95%
Student t interval over the n seeds, and a verdict (better / no significant difference / worse).
"""

from __future__ import annotations

import itertools
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
from autoaug.augment.presets import resolve_policy
from autoaug.data import DatasetSplits
from autoaug.errors import AutoaugError
from autoaug.progress import RunsProgress, Status
from autoaug.report import body, journal
from autoaug.report.document import to_html, to_markdown
from autoaug.report.finals import FinalSettings
from autoaug.report.finished import SEARCHED, FinishedSearch, load_search
from autoaug.report.seeds import preset_count, report_seeds, verdict_seeds
from autoaug.report.summary import by_policy, comparison_rows
from autoaug.report.tracking import save_model
from autoaug.search.tracking import system_monitor


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
                num_cpus: int | None = None, precision: str | None = None, system_metrics: bool = False,
                echo: Callable[[str], None] = print, live: bool = False) -> Report:
    """Retrain the best policy of ``search`` and the ``compare`` policies (:func:`compared_policies`) on ``seeds``
    seeds; write the report under ``out``. ``precision``: as the search computed, unless given.
    ``system_metrics``: MLflow's system metrics of this machine go to the search's run while the runs train."""
    if not isinstance(seeds, int) or seeds < 1:
        raise AutoaugError(f"seeds {seeds!r} must be a positive integer")
    if not isinstance(robust_size, int) or robust_size < 1:
        raise AutoaugError(f"robust size {robust_size!r} must be a positive integer")
    compared = compared_policies(compare) if compare is not None else None
    found = load_search(search, tracking_uri)
    s = found.record
    out_root = Path(out).expanduser().resolve()
    out_root.mkdir(parents=True, exist_ok=True)

    from autoaug.data.datasets import load_dataset

    data = load_dataset(s.dataset, train_size=s.train_size, seed=s.seed, image_size=s.image_size)
    if compared is None:
        compared = compared_policies(found.standards(data.image_shape))
    base = found.train_config(precision)
    settings = FinalSettings(base, robust_size=min(robust_size, len(data.test_y)))
    policies = [replace(found.best, name=SEARCHED), *compared]
    twin = twin_of(found.best, compared)
    trained = compared if twin else policies  # a compared policy equal to the searched one is trained once
    # seeds of the report's own stream, none of the search's or the selection's: the draws (initialization, batch
    # order, augmentation) that put a trial on top do not carry over; their number is fixed before any result
    seed_list = report_seeds(s, seeds)
    preset = preset_count(found.folder, s, seeds, echo)
    echo(f"{data.summary()}; retraining {len(trained)} policies x {seeds} seeds "
         f"({base.model}, {base.epochs} epochs) and evaluating on the test split")
    if twin:
        echo(f"the searched policy is the same as {twin!r}: its runs serve both")
    folder = _new_folder(out_root, s.dataset)
    tracker = _tracker(found, data, echo)
    quality = None
    if any(p.synthetic for p in policies):  # train the generators here, so that the parallel runs only load them
        from autoaug.report.ablation import generator_quality

        quality = generator_quality(data, policies, seed_list, echo)
    run = {"cpus_per_trial": cpus_per_trial, "gpus_per_trial": gpus_per_trial, "address": address,
           "num_cpus": num_cpus, "live": live}
    # the searched policy's model from its first seed is logged to MLflow (mlflow.pytorch) with the policy
    keep = ((twin or SEARCHED, seed_list[0]), replace(found.best, name=SEARCHED))
    with system_monitor(found.tracking_uri, tracker and found.parent_run_id, system_metrics):
        records, final_seconds, resources = _final_runs(found, data, trained, policies, seed_list, settings,
                                                        folder, tracker, echo, keep, **run)
    if twin:
        records += [{**r, "policy": SEARCHED, "same_as": twin} for r in records if r["policy"] == twin]
    order = [p.name for p in policies]
    records.sort(key=lambda r: (order.index(r["policy"]), r["seed"]))
    groups = by_policy(records, order)
    if "none" not in groups:
        raise AutoaugError("every final run of the 'none' policy failed: nothing to compare with")
    decisive = set(verdict_seeds(seed_list, preset))
    rows = comparison_rows({name: [r for r in runs if r["seed"] in decisive] for name, runs in groups.items()})

    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=out_root))
    staging.chmod(0o755)  # mkdtemp makes it private; the report is an ordinary folder
    try:
        body.write_files(staging, found, policies, rows, records, quality)
        blocks = body.blocks(staging, found, data, policies, groups, rows, records, resources, final_seconds, seeds,
                             settings, folder, quality, sorted(decisive))
        (staging / "report.md").write_text(to_markdown(blocks))
        (staging / "report.html").write_text(to_html(blocks, f"autoaug report: {s.dataset}"))
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


def _final_runs(found: FinishedSearch, data: DatasetSplits, trained: Sequence[Policy], policies: Sequence[Policy],
                seed_list: Sequence[int], settings: FinalSettings, folder: Path, tracker: Any,
                echo: Callable[[str], None], keep: tuple[tuple[str, int], Policy], *,
                cpus_per_trial: float | None, gpus_per_trial: float | None, address: str | None,
                num_cpus: int | None, live: bool) -> tuple[list[dict[str, Any]], float, dict[str, float]]:
    """Train ``trained`` on ``seed_list`` through Ray, each run logged to MLflow (``tracker``) as it ends; the runs'
    records, the wall time they took (the journaled runs' included) and each run's resources. The run ``keep``
    names keeps its trained model beside the journal, and MLflow gets it with the policy ``keep`` gives.

    Finished runs are journaled as they arrive and the journal is kept: the same report command after a crash or
    Ctrl-C trains only the missing runs, after a finished report remakes it without training, and a report on
    more seeds trains only the new seeds."""
    import ray

    from autoaug.report.finals import run_finals
    from autoaug.search import concurrent, start_ray, trial_resources

    path = journal.journal_path(folder.parent, found, policies, settings)
    model_file = path.with_name(f".model-{path.stem[len('.runs-'):]}.pt")
    earlier = [r for r in journal.read_journal(path) if r["seed"] in seed_list]
    if earlier:
        echo(f"reusing {len(earlier)} of {len(trained) * len(seed_list)} finished runs from {path} "
             "(delete it to train them again)")
    params = {k: v for k, v in settings.base.to_dict().items() if k not in ("seed", "device")} | {
        "report": folder.name, "journal": path.stem[len(".runs-"):]}

    def log(record: dict[str, Any]) -> None:
        kept = (record["policy"], record["seed"]) == keep[0] and model_file.exists()
        tracker.log_final(record, params, *((model_file, keep[1]) if kept else ()))

    if tracker is not None and earlier:  # a report killed between a run's journal line and its MLflow run
        logged = tracker.logged(params["journal"]) or set()
        for record in earlier:
            if (record["policy"], record["seed"]) not in logged:
                log(record)
    before = max((r["elapsed"] for r in earlier), default=0.0)
    started = start_ray(address, num_cpus)
    t0 = time.perf_counter()
    try:
        resources, mem_fraction = trial_resources(cpus_per_trial, gpus_per_trial)
        progress = RunsProgress(len(trained) * len(seed_list) - len(earlier), concurrent(resources),
                                Status(echo, live))

        def on_record(record: dict[str, Any]) -> None:
            if (model := record.pop("model", None)) is not None:
                save_model(model, model_file)
            if "error" not in record:  # journaled before it is shown: a run shown as done is never trained again
                journal.append(path, {**record, "elapsed": before + time.perf_counter() - t0})
            what = (f"FAILED ({record['error']})" if "error" in record else
                    f"test acc {record['test']['acc']:.4f}, {record['train_seconds']:.0f} s")
            progress.ended(record.get("wall_seconds", 0.0), f"{record['policy']} seed {record['seed']}: {what}")
            if tracker is not None:  # a lost server loses only the MLflow copy: the record stays in the report
                log(record)

        records = run_finals(trained, seed_list, data, settings, resources=resources,
                             gpu_memory_fraction=mem_fraction, on_record=on_record, on_wait=progress.tick,
                             skip={(r["policy"], r["seed"]) for r in earlier}, keep=keep[0])
        progress.status.close()
    finally:
        if started:
            ray.shutdown()
    records = [{k: v for k, v in r.items() if k != "elapsed"} for r in earlier] + records
    return records, before + time.perf_counter() - t0, resources


def _new_folder(root: Path, dataset: str) -> Path:
    """A report folder under ``root`` named after ``dataset`` and the time, that does not exist yet."""
    from autoaug.data.sources import folder_name

    stamp = time.strftime("%Y%m%d-%H%M%S")
    folder = root / f"{folder_name(dataset)}-{stamp}"
    for i in itertools.count(2):
        if not folder.exists():
            break
        folder = root / f"{folder_name(dataset)}-{stamp}-{i}"
    return folder


def _tracker(found: FinishedSearch, data: DatasetSplits, echo: Callable[[str], None]) -> Any:
    if found.parent_run_id is None or found.tracking_uri is None:
        echo(f"note: {found.folder} records no MLflow run (no mlflow.json); the final runs are not tracked")
        return None
    from autoaug.report.tracking import FinalTracker
    from autoaug.search import dataset_input
    from autoaug.train.batches import to_float

    return FinalTracker(found.tracking_uri, found.parent_run_id, echo, dataset=dataset_input(data),
                        example=to_float(data.test_x[:2]).numpy())  # 2: a dynamic batch size
