"""A search's two Tune experiments: the trials (Optuna with ASHA, FIFO or PBT; new or restored) and the selection
stage's re-runs (a grid of candidate x seed), with the tables of their results."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from autoaug.augment.presets import PRESETS
from autoaug.errors import AutoaugError
from autoaug.progress import SearchProgress, Status
from autoaug.search import hooks, selection
from autoaug.search.hooks import METRIC, MODE, PROGRESS, RUNGS
from autoaug.search.settings import SearchSettings
from autoaug.search.space import SearchSpace, is_point
from autoaug.search.study import live_study
from autoaug.search.tracking import SearchTracker, tune_callback
from autoaug.train.trainer import TrainConfig

Trainable = Callable[..., Any]  # (trial function, **its extra parameters) -> Tune trainable with resources


def preset_points(space: SearchSpace, base: TrainConfig, image_shape: Sequence[int]) -> dict[str, dict[str, Any]]:
    """``none``, the standards for images of ``image_shape`` and ``baseline``, as flat points of ``space`` (those
    it can express): the search's first trials."""
    train = {"lr": base.lr, "weight_decay": base.weight_decay}
    points = {name: space.point(PRESETS[name], train) for name in ("none", *space.standards(image_shape), "baseline")}
    return {name: p for name, p in points.items() if p is not None}


def preset_column(frame: Any, points: dict[str, dict[str, Any]]) -> list[str]:
    """For each trial (row of ``frame``), the preset whose point it evaluated, or ``""``."""
    def which(row: Any) -> str:
        params = {k[len("config/"):]: v for k, v in row.items() if k.startswith("config/")}
        return next((name for name, point in points.items() if is_point(params, point)), "")

    return [which(row) for _, row in frame.iterrows()]


def trials_tuner(settings: SearchSettings, trainable: Any, tracker: SearchTracker,
                 points: dict[str, dict[str, Any]]) -> Any:
    """The trials' Tune experiment: restored where a resumed search left one (ASHA's rung refilled from the results
    MLflow recorded), else new; the preset ``points`` (:func:`preset_points`) first."""
    from ray import tune

    from autoaug.search import pbt

    r, out, grace = settings.record, settings.out, settings.grace
    callbacks = [*([live_study(out, settings.space, r.epochs)] if r.study else []),  # before the progress line
                 hooks.progress_callback(out.name, r.epochs), tune_callback(tracker.parent_id, r.epochs)]
    if settings.resume and hooks.restorable(out):
        if r.scheduler == "asha" and (history := tracker.histories(METRIC)):
            RUNGS[out.name] = history
            settings.echo(f"ASHA's rung at epoch {grace} refilled with the recorded results of "
                          f"{sum(grace in h for h in history.values())} trials")
        return tune.Tuner.restore(str(out), trainable=trainable, resume_errored=False, restart_errored=False)
    param_space, search_alg, trial_scheduler = {}, None, None
    if r.scheduler == "pbt":
        trial_scheduler, param_space = pbt.scheduler(settings.space, r.epochs, r.seed)
    else:
        search_alg = hooks.searcher(settings.space, r.seed, list(points.values()), r.epochs)
    if r.scheduler == "asha":  # the points run to the end where their run is their selection run
        kept = list(points.values()) if r.points_seed is not None else []
        trial_scheduler = hooks.asha(out.name, r.epochs, grace, kept)
    # a trial whose worker dies (killed, out of memory, its node lost) runs once more from its start; one that fails
    # again (as a diverging one does) is recorded failed and the search goes on
    return tune.Tuner(
        trainable, param_space=param_space,
        tune_config=tune.TuneConfig(metric=METRIC, mode=MODE, num_samples=r.trials, reuse_actors=True,
                                    search_alg=search_alg, scheduler=trial_scheduler),
        run_config=tune.RunConfig(name=out.name, storage_path=str(out.parent), verbose=0, callbacks=callbacks,
                                  stop=hooks.storage_stopper(), failure_config=tune.FailureConfig(max_failures=1),
                                  checkpoint_config=tune.CheckpointConfig(num_to_keep=3)))


def results(grid: Any, epochs: int, pruned: str = "pruned") -> Any:
    """One row per trial of ``grid`` with its ``status``: completed (all ``epochs``), failed, or ``pruned``."""
    frame = hooks.frame_of(grid)
    failed = {r.metrics.get("trial_id") for r in grid if r.error is not None and r.metrics}
    frame["status"] = ["failed" if t in failed else "completed" if e >= epochs else pruned
                       for t, e in zip(frame.get("trial_id", []), frame.get("epoch", []), strict=True)]
    return frame


def run_selection(frame: Any, settings: SearchSettings, trainable_of: Trainable, tracker: SearchTracker,
                  status: Status) -> selection.Selection:
    """Train the candidates of :func:`autoaug.search.selection.candidates` on the selection's fresh seeds: every
    candidate on every seed, except the runs of ``none`` and the standards the search already trained on the first
    (:func:`autoaug.search.selection.trained`)."""
    r, out = settings.record, settings.out
    roles = selection.candidates(frame, settings.space, r.select)
    if not roles:
        raise AutoaugError(f"no trial of the search in {out} finished all {r.epochs} epochs")
    seeds = [r.seed + i for i in range(1, settings.extra_seeds + 1)]
    known = selection.trained(frame, roles, r.points_seed) if r.points_seed == seeds[0] else {}
    pairs = [{"of": t, "seed": s} for t in roles for s in seeds if not (s == seeds[0] and t in known)]
    on = f"seed{'s' * (len(seeds) > 1)} {', '.join(map(str, seeds))}"
    status.event(f"selection: {', '.join(roles.values())} on {on}"
                 + (f"; the {len(known)} fixed points trained on seed {seeds[0]} in the search" if known else "")
                 + f" ({len(pairs)} more run{'s' * (len(pairs) != 1)}); the best mean wins (the search's own "
                 "scores do not vote)")
    grid = _rerun(pairs, frame, roles, settings, trainable_of, tracker, status) if pairs else []
    chosen = selection.collect(results(grid, r.epochs, pruned="failed") if pairs else frame.iloc[:0], roles, seeds,
                               known, runs=len(pairs))
    vs = chosen.versus_none()
    status.event(f"selected trial {chosen.picked} ({chosen.roles[chosen.picked]}): mean validation accuracy "
                 f"{chosen.mean(chosen.picked):.4f} on {len(chosen.seeds)} fresh seed{'s' * (len(chosen.seeds) > 1)}"
                 + (f"; vs none {vs}" if vs is not None else ""))
    metrics = {"selection.picked_mean_val_acc": chosen.mean(chosen.picked)}
    if vs is not None:
        metrics |= {"selection.vs_none": vs.mean, "selection.vs_none_low": vs.low, "selection.vs_none_high": vs.high}
    tracker.log_metrics(tracker.parent_id, metrics, step=0)
    return chosen


def _rerun(pairs: list[dict[str, Any]], frame: Any, roles: dict[str, str], settings: SearchSettings,
           trainable_of: Trainable, tracker: SearchTracker, status: Status) -> Any:
    """The selection's re-runs (``pairs`` of candidate trial id and seed) as a Tune experiment of its own
    (``out/selection``, restored on a resume; its runs are MLflow children with role ``selection``); the grid."""
    from ray import tune
    from ray.tune.search import BasicVariantGenerator

    from autoaug.search.trial import rerun_trial

    r, out = settings.record, settings.out
    key = f"{out.name}/selection"
    PROGRESS[key] = SearchProgress(len(pairs), r.epochs, status)
    trainable = trainable_of(rerun_trial, runs=len(pairs), candidates=selection.parameters(frame, roles))
    try:
        if hooks.restorable(out / "selection"):
            tuner = tune.Tuner.restore(str(out / "selection"), trainable=trainable, resume_errored=False,
                                       restart_errored=False)
        else:
            callbacks = [hooks.progress_callback(key, r.epochs),
                         tune_callback(tracker.parent_id, r.epochs, role="selection")]
            tuner = tune.Tuner(
                trainable, param_space={"of": "", "seed": 0},  # placeholders: each run is one of the ``pairs``
                tune_config=tune.TuneConfig(
                    metric=METRIC, mode=MODE, reuse_actors=True, num_samples=len(pairs),
                    search_alg=BasicVariantGenerator(points_to_evaluate=pairs)),
                run_config=tune.RunConfig(name="selection", storage_path=str(out), verbose=0,
                                          stop=hooks.storage_stopper(), callbacks=callbacks,
                                          failure_config=tune.FailureConfig(max_failures=1)))
        grid = hooks.fit(tuner, out / "selection")
        if grid is None or grid.num_terminated + grid.num_errors < len(pairs):
            raise KeyboardInterrupt
    finally:
        PROGRESS.pop(key, None)
    return grid
