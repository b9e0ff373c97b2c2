"""``tune_policy()``: a Ray Tune search over augmentation policies with Optuna (TPE) and ASHA.

Optuna samples the flat parameters of a :class:`~autoaug.search.space.SearchSpace` (define-by-run);
``none`` and the free standards for the data (:func:`autoaug.augment.presets.standards`) are evaluated first as
fixed points, where the space can express them. ASHA stops weak trials early on validation accuracy, at 80% of
the epochs (:data:`autoaug.search.budgets.RUNG`). A trial ASHA stopped is told to Optuna as PRUNED (with its
per-epoch values), not as COMPLETE: TPE then ranks it below every finished trial instead of comparing its early
score with final scores of full-length trials. Then the best few trials, the best standard and ``none`` train
again on more seeds and the best mean wins (:mod:`autoaug.search.selection`).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autoaug.augment.policy import Policy
from autoaug.data.datasets import DatasetSplits, load_dataset
from autoaug.data.names import DEFAULT_DATASET
from autoaug.data.sources import folder_name
from autoaug.errors import AutoaugError
from autoaug.files import atomic
from autoaug.progress import SearchProgress, Status
from autoaug.search import experiment, hooks
from autoaug.search.hooks import METRIC, MODE, PROGRESS, RUNGS
from autoaug.search.provenance import dataset_input
from autoaug.search.record import RECORD_FILE, STUDY_FILE, SearchRecord
from autoaug.search.selection import Selection
from autoaug.search.settings import SearchSettings, resolve
from autoaug.search.space import space_file
from autoaug.search.study import write_study
from autoaug.search.tracking import SearchTracker


@dataclass(frozen=True)
class SearchResult:
    """What a search found: the best policy, every trial, and where the outputs are."""

    best_policy: Policy
    best_val_acc: float
    trials: Any  # pandas.DataFrame: one row per trial
    output_dir: Path
    policy_path: Path
    mlflow_run_id: str
    tracking_uri: str
    record: SearchRecord | None = None  # search.json


def tune_policy(dataset: str = DEFAULT_DATASET, *, space: str | None = None, model: str | None = None,
                trials: int | None = None, epochs: int | None = None, budget: str | None = None,
                train_size: int | None = None, image_size: int | None = None, weights: str | None = None,
                cpus_per_trial: float | None = None,
                gpus_per_trial: float | None = None, seed: int | None = None, address: str | None = None,
                storage: str | os.PathLike[str] = "autoaug-runs", name: str | None = None, resume: bool = False,
                tracking_uri: str | None = None, num_cpus: int | None = None, scheduler: str | None = None,
                precision: str | None = None, compile: bool | None = None, select: int | None = None,
                system_metrics: bool = False, echo: Callable[[str], None] = print, live: bool = False) -> SearchResult:
    """Search a policy for ``dataset``; returns the best policy (also written as JSON) and every trial.

    Defaults: ``budget`` small (it sets trials, epochs, model and training size, which may be given instead; its
    training size is a ceiling on smaller data), ``image_size`` the images' own (every image made that size
    square, :mod:`autoaug.data.resize`), ``weights`` none (``hub`` or a state dict file: a timm model fine-tunes
    from them, with AdamW at a lower rate, :mod:`autoaug.train.weights`), ``scheduler`` asha, ``seed`` 0.
    ``precision`` (auto, fp32, bf16, fp16; default auto) and ``compile`` (default off) set how every trial
    computes (:mod:`autoaug.train.precision`); ``auto`` resolves on each trial's device. With ``resume``, every
    setting comes from the search being resumed; one given that contradicts it is an error. ``select`` (default:
    the budget's, 3 for ``small``) best completed trials, the best standard and ``none`` train again on more seeds
    and the best mean wins (0: the best single trial wins; see :mod:`autoaug.search.selection`). Progress goes to
    ``echo``: a line per ended trial and a status line (running trials, counts, best, time left) every few
    seconds, updated in place on the terminal with ``live``. ``system_metrics``: MLflow's system metrics of this
    machine go to the search's parent run every 10 s."""
    given = {"space": space, "model": model, "trials": trials, "epochs": epochs, "budget": budget,
             "train_size": train_size, "image_size": image_size, "scheduler": scheduler, "seed": seed,
             "precision": precision, "compile": compile, "select": select, "weights": weights}
    settings = resolve(dataset, given, storage, name, resume, tracking_uri=tracking_uri, address=address,
                       num_cpus=num_cpus, cpus_per_trial=cpus_per_trial, gpus_per_trial=gpus_per_trial, echo=echo,
                       live=live, system_metrics=system_metrics)
    if settings.record.finished:
        echo(f"the search in {settings.out} has finished all its trials; its result is read back")
        return finished_result(settings.out)
    return run_search(settings)


def run_search(settings: SearchSettings) -> SearchResult:
    """Run the search ``settings`` describe: its trials, then its selection stage; write its files."""
    from autoaug.search import pbt, trial

    r, out, echo = settings.record, settings.out, settings.echo
    for note in settings.notes:
        echo(note)
    with _launched(settings) as run:
        t_start = time.perf_counter() - (r.wall_seconds or 0.0)  # summed over the Ctrl-C-interrupted parts
        echo(f"{run.data.summary()}; space {settings.space.source}; {r.trials} trials x up to {r.epochs} epochs")
        echo(f"MLflow: run {run.tracker.parent_id} in {run.tracker.uri}")
        PROGRESS[out.name] = progress = SearchProgress(r.trials, r.epochs, Status(echo, settings.live))
        try:
            r = _train_generators(run)
            points = experiment.preset_points(settings.space, settings.base, run.data.image_shape)
            fixed = {"points": list(points.values()), "points_seed": r.points_seed} if r.points_seed is not None else {}
            trainable = (run.trainable(pbt.run_pbt_trial) if r.scheduler == "pbt" else
                         run.trainable(trial.run_trial, **fixed))
            grid = hooks.fit(experiment.trials_tuner(settings, trainable, run.tracker, points), out)
            if grid is None or grid.num_terminated + grid.num_errors < r.trials:  # Tune returns after Ctrl-C
                raise KeyboardInterrupt
            frame = experiment.results(grid, r.epochs)
            run.tracker.drop_lost_children(set(frame["trial_id"]) if "trial_id" in frame else set())
            r = r.replace(wall_seconds=time.perf_counter() - t_start)
            frame["preset"] = experiment.preset_column(frame, points)
            chosen = replay = None
            if r.scheduler != "pbt" and r.select:
                chosen = experiment.run_selection(frame, settings, run.trainable, run.tracker, progress.status)
                frame = chosen.columns(frame)
                r = r.replace(selection=chosen.to_dict(), wall_seconds=time.perf_counter() - t_start)
            if r.scheduler == "pbt":  # the best trial's lineage of settings, replayed epoch by epoch
                best = grid.get_best_result(metric=METRIC, mode=MODE, scope="last")
                replay = pbt.replay_policy(pbt.load_stages(best.checkpoint), r.epochs, f"best-{r.dataset}")
            return _summarize(frame, settings, r, run.tracker, replay, chosen)
        except (KeyboardInterrupt, SystemExit):  # Ctrl-C, or SIGTERM (Ray's handler exits)
            r.replace(wall_seconds=time.perf_counter() - t_start).to_file(out)
            echo(f"search interrupted; its state is in {out}. Continue it with --resume (same dataset and storage).")
            raise
        finally:
            progress.status.close()
            PROGRESS.pop(out.name, None)
            RUNGS.pop(out.name, None)


@dataclass(frozen=True)
class _Run:
    """A launched search: its data (also in Ray's object store: ``packed``), each trial's resources, its MLflow
    parent run."""

    settings: SearchSettings
    data: DatasetSplits
    packed: Any
    resources: dict[str, float]
    mem_fraction: float | None
    tracker: SearchTracker

    def trainable(self, fn: Callable[..., None], *, runs: int | None = None, **params: Any) -> Any:
        """The trial function ``fn`` as a Tune trainable with the search's data, space, base config and resources;
        for a stage of a known number of ``runs``, the CPUs the others would leave idle shared out among them
        (:func:`autoaug.search.cluster.widened`)."""
        from ray import tune

        from autoaug.search.cluster import widened

        resources = self.resources if runs is None else widened(self.resources, runs)
        return tune.with_resources(tune.with_parameters(
            fn, data=self.packed, space=self.settings.space, base=self.settings.base,
            gpu_memory_fraction=self.mem_fraction, **params), resources)


@contextlib.contextmanager
def _launched(settings: SearchSettings) -> Iterator[_Run]:
    """The search launched on a running Ray, with its MLflow parent run; nothing is written before the data loads
    and the resources are known to fit. Every exit closes the run (with its status) and stops the Ray this search
    started."""
    import ray

    from autoaug.search.cluster import pack, start_ray, trial_resources
    from autoaug.search.tracking import check_reachable, default_tracking_uri, system_monitor

    r, out = settings.record, settings.out
    uri = settings.tracking_uri or default_tracking_uri()
    check_reachable(uri)
    data = settings.data if settings.data is not None else load_dataset(
        r.dataset, train_size=r.train_size, seed=r.seed, image_size=r.image_size)
    started = start_ray(settings.address, settings.num_cpus)
    try:
        resources, mem_fraction = trial_resources(settings.cpus_per_trial, settings.gpus_per_trial)
        tracker = SearchTracker(uri, folder_name(r.dataset), out, {**r.settings(), **_versions()}, settings.echo)
    except BaseException:
        if started:
            ray.shutdown()
        raise
    status, cause = "FAILED", None
    try:  # from here on the search exists (its folder and MLflow parent run)
        if not settings.resume:
            r.to_file(out)
            tracker.log_dataset(tracker.parent_id, dataset_input(data))
        with system_monitor(uri, tracker.parent_id, settings.system_metrics):
            yield _Run(settings, data, pack(data), resources, mem_fraction, tracker)
        status = "FINISHED"
    except (KeyboardInterrupt, SystemExit):
        status = "KILLED"
        raise
    except BaseException as e:
        cause = f"{type(e).__name__}: {e}".splitlines()[0]
        raise
    finally:
        if started:
            ray.shutdown()
        tracker.finish(status, [out / "best_policy.json", out / "trials.csv", out / RECORD_FILE, out / STUDY_FILE,
                                space_file(settings.space.source)], cause=cause)


def _train_generators(run: _Run) -> SearchRecord:
    """Where the space searches a synthetic ratio: train its generators once (or load them from the cache), in a
    Ray task with a trial's resources; the record with their training seconds."""
    r, space = run.settings.record, run.settings.space
    if space.synthetic_ratio is None:
        return r
    import ray

    task = ray.remote(num_cpus=run.resources["cpu"], num_gpus=run.resources["gpu"], max_retries=0)(_generators_task)
    spent = ray.get(task.remote(run.packed, space.generators, r.seed, space.generator_epochs, run.mem_fraction))
    for kind, seconds in spent.items():
        run.tracker.log_metrics(run.tracker.parent_id, {f"generator_seconds.{kind}": seconds}, step=0)
        run.settings.echo(f"generator {kind} ready (trained in {seconds:.0f} s, cached)")
    return r.replace(generator_seconds={**r.generator_seconds, **spent})


def _generators_task(packed: Any, kinds: Sequence[str], seed: int, epochs: int,
                     gpu_memory_fraction: float | None) -> dict[str, float]:
    """Ray task: train (or load from the cache) each generator of ``kinds``; their training seconds."""
    from autoaug.data.synthetic import generator_for
    from autoaug.search.cluster import unpack, worker_device

    device, data = worker_device(gpu_memory_fraction), unpack(packed)
    return {kind: generator_for(kind, data, seed=seed, epochs=epochs, device=device, echo=lambda line: None)[1]
            for kind in kinds}


def _summarize(frame: Any, settings: SearchSettings, record: SearchRecord, tracker: SearchTracker,
               replay: Policy | None = None, chosen: Selection | None = None) -> SearchResult:
    """Write the best policy (the ``chosen`` trial's where there was a selection stage; ``replay`` where given: a
    PBT lineage), trials.csv, the Optuna study and search.json."""
    out, epochs = settings.out, record.epochs
    finished = frame[frame["epoch"] == epochs] if "epoch" in frame else frame.iloc[0:0]
    if finished.empty:
        raise AutoaugError(f"no trial of the search in {out} finished all {epochs} epochs")
    best_row = (finished.loc[finished[METRIC].idxmax()] if chosen is None
                else finished[finished["trial_id"] == chosen.picked].iloc[0])
    params = {k[len("config/"):]: v for k, v in best_row.items() if k.startswith("config/")}
    best = replay or settings.space.to_policy(params, name=f"best-{record.dataset}")
    policy_path = best.save(out / "best_policy.json")
    with atomic(out / "trials.csv") as tmp:
        frame.to_csv(tmp, index=False)
    if record.study:
        write_study(frame, settings.space, out)
    best_val_acc = float(best_row[METRIC]) if chosen is None else chosen.mean(chosen.picked)
    record = record.replace(best_val_acc=best_val_acc, best_trial_id=str(best_row.get("trial_id", "")),
                            mlflow_run_id=tracker.parent_id, tracking_uri=tracker.uri)
    record.to_file(out)
    tracker.log_metrics(tracker.parent_id, {"best_val_acc": best_val_acc}, step=0)
    return SearchResult(best, best_val_acc, frame, out, policy_path, tracker.parent_id, tracker.uri, record)


def finished_result(out: Path) -> SearchResult:
    """The result of the finished search in ``out``, from its files."""
    import pandas as pd

    record = SearchRecord.from_file(out)
    frame = pd.read_csv(out / "trials.csv")
    if "preset" in frame:
        frame["preset"] = frame["preset"].fillna("")
    return SearchResult(Policy.load(out / "best_policy.json"), record.best_val_acc, frame, out,
                        out / "best_policy.json", record.mlflow_run_id, record.tracking_uri, record)


def _versions() -> dict[str, str]:
    import importlib.metadata as md
    import platform

    out = {"python": platform.python_version()}
    for pkg in ("torch", "ray", "optuna", "mlflow"):
        out[f"version.{pkg}"] = md.version(pkg)
    return out
