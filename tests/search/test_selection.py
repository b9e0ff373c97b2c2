"""The selection stage's pure parts: which trials train again, how their seeds are paired and the best picked."""

from __future__ import annotations

import pandas as pd
import pytest

from autoaug.search import selection
from autoaug.search.space import load_space

SPACE = load_space("default")


def _trial(trial_id: str, val_acc: float, n_ops: int, magnitude: float, status: str = "completed",
           preset: str = "", base: str = "none") -> dict:
    return {"trial_id": trial_id, "val_acc": val_acc, "status": status, "preset": preset, "epoch": 3,
            "config/base": base, "config/n_ops": n_ops, "config/magnitude": magnitude,
            "config/style": "randaugment", "config/group.geometric": 1.0, "config/group.color": 1.0,
            "config/schedule": "constant"}


FRAME = pd.DataFrame([
    _trial("none", 0.80, 0, 0.0, preset="none"),
    _trial("ra", 0.82, 2, 0.3, preset="randaugment"),
    _trial("a", 0.85, 1, 0.5),
    _trial("a2", 0.849, 1, 0.5),  # the same policy as `a`: not a second candidate
    _trial("b", 0.84, 3, 0.2),
    _trial("c", 0.83, 2, 0.9),
    _trial("d", 0.90, 2, 0.1, status="pruned"),  # stopped early: not a top trial
    _trial("ta", 0.70, 1, 1.0, status="pruned", preset="trivialaugment"),  # a standard ASHA stopped: still enters
    _trial("cf", 0.60, 0, 0.0, status="failed", preset="cropflip", base="cropflip"),  # failed: it does not
])


def test_candidates_are_the_top_distinct_trials_every_standard_and_none() -> None:
    roles = selection.candidates(FRAME, SPACE, k=3)
    assert roles == {"a": "top 1", "b": "top 2", "c": "top 3", "ra": "randaugment", "ta": "trivialaugment",
                     "none": "none"}
    assert selection.candidates(FRAME, SPACE, k=1) == {"a": "top 1", "ra": "randaugment", "ta": "trivialaugment",
                                                       "none": "none"}


def test_a_standard_stopped_by_asha_still_enters_selection() -> None:
    frame = FRAME.assign(status=FRAME["status"].where(FRAME["trial_id"] != "ra", "pruned"))
    assert selection.candidates(frame, SPACE, k=1) == {"a": "top 1", "ra": "randaugment", "ta": "trivialaugment",
                                                       "none": "none"}


def test_none_and_the_standards_are_never_top_trials() -> None:
    """A standard with the best score of the search enters as itself; the top slots go to sampled trials."""
    frame = FRAME.assign(val_acc=FRAME["val_acc"].where(~FRAME["trial_id"].isin(["none", "ra"]), 0.99))
    assert selection.candidates(frame, SPACE, k=2) == {"a": "top 1", "b": "top 2", "none": "none",
                                                       "ra": "randaugment", "ta": "trivialaugment"}


def test_a_sampled_trial_that_repeats_a_standard_is_not_a_candidate_twice() -> None:
    frame = pd.concat([FRAME, pd.DataFrame([_trial("ra2", 0.99, 2, 0.3)])], ignore_index=True)  # RandAugment again
    assert selection.candidates(frame, SPACE, k=1) == {"a": "top 1", "ra": "randaugment", "ta": "trivialaugment",
                                                       "none": "none"}


def test_the_standards_runs_on_the_first_fresh_seed_come_from_the_search() -> None:
    """``none`` and the standards trained on the selection's first seed in the search: only the top trials train
    again on it, and a standard ASHA stopped (an older search's) or that failed has no run there."""
    roles = selection.candidates(FRAME, SPACE, k=1)
    known = selection.trained(FRAME, roles, seed=1)
    assert known == {"none": 0.80, "ra": 0.82}
    assert selection.trained(FRAME, roles, seed=None) == {}  # an older search: its points trained on its own seed
    rerun = pd.DataFrame([{"config/of": "a", "config/seed": 1, "val_acc": 0.83, "status": "completed"},
                          {"config/of": "ta", "config/seed": 1, "val_acc": 0.75, "status": "completed"}])
    chosen = selection.collect(rerun, roles, (1,), known, runs=2)
    assert chosen.scores == {"a": [0.83], "ra": [0.82], "ta": [0.75], "none": [0.80]}
    assert chosen.picked == "a" and chosen.to_dict()["runs"] == 2


def _reruns(scores: dict[str, list[float]], failed: tuple[str, ...] = ()) -> pd.DataFrame:
    return pd.DataFrame([{"config/of": t, "config/seed": seed, "val_acc": v,
                          "status": "failed" if t in failed else "completed"}
                         for t, values in scores.items() for seed, v in zip((1, 2), values, strict=True)])


def test_the_best_mean_over_the_fresh_seeds_wins_and_is_paired_with_none() -> None:
    roles = selection.candidates(FRAME, SPACE, k=2)
    # `a` was the luckiest single run (0.85) but `b` is better on the fresh seeds
    rerun = _reruns({"a": [0.80, 0.81], "b": [0.85, 0.86], "ra": [0.83, 0.82], "ta": [0.7, 0.7],
                     "none": [0.79, 0.80]})
    chosen = selection.collect(rerun, roles, (1, 2))
    assert chosen.picked == "b" and chosen.seeds == (1, 2)
    assert chosen.scores["b"] == [0.85, 0.86] and chosen.mean("b") == pytest.approx(0.855)
    vs = chosen.versus_none()
    assert vs.n == 2 and vs.mean == pytest.approx(0.855 - 0.795) and vs.low > 0
    table = chosen.columns(FRAME)
    assert table.loc[table["trial_id"] == "b", "selection.picked"].item()
    assert table.loc[table["trial_id"] == "c", "selection.role"].item() == ""
    header, rows = selection.selection_table(table)
    assert header == ["trial", "candidate as", "seed 1", "seed 2", "mean", "picked"]
    assert rows[0] == ["b", "top 2", "0.8500", "0.8600", "0.8550", "yes"]


def test_selection_ignores_the_search_score() -> None:
    """`a` scored 0.85 in the search and `b` 0.84; on the fresh seeds `b` is ahead by 0.002. Counting the search's
    score would pick `a` (0.8367 against 0.8347): the score that made `a` a candidate does not vote."""
    roles = {"a": "top 1", "b": "top 2", "none": "none"}
    chosen = selection.collect(_reruns({"a": [0.83, 0.83], "b": [0.832, 0.832], "none": [0.8, 0.8]}), roles, (1, 2))
    assert chosen.picked == "b"
    own = FRAME.set_index("trial_id")["val_acc"]
    assert (own["a"] + 0.83 * 2) / 3 > (own["b"] + 0.832 * 2) / 3  # what the search's score would have done


def test_a_failed_rerun_leaves_its_candidate_out_and_none_picked_has_no_comparison() -> None:
    roles = selection.candidates(FRAME, SPACE, k=1)
    rerun = _reruns({"a": [0.9, 0.9], "ra": [0.7, 0.7], "ta": [0.7, 0.7], "none": [0.9, 0.95]}, failed=("a",))
    chosen = selection.collect(rerun, roles, (1, 2))
    assert set(chosen.scores) == {"ra", "ta", "none"} and chosen.picked == "none"
    assert chosen.versus_none() is None and "versus_none" not in chosen.to_dict()


def test_candidate_parameters_are_the_trials_own() -> None:
    params = selection.parameters(FRAME, {"b": "top 1"})
    assert SPACE.to_policy(params["b"]).n_ops == 3 and "trial_id" not in params["b"]


def test_a_fixed_point_trains_on_the_selection_seed_and_a_sampled_trial_on_the_search_seed() -> None:
    from autoaug.search.trial import trial_seed

    point = {"base": "cropflip", "n_ops": 0}
    assert trial_seed({"base": "cropflip", "n_ops": 0}, 0, [point], points_seed=1) == 1
    assert trial_seed({"base": "cropflip", "n_ops": 1}, 0, [point], points_seed=1) == 0
    assert trial_seed({"base": "cropflip", "n_ops": 0}, 0, [point], points_seed=None) == 0  # an older search
    assert trial_seed({"base": "cropflip", "n_ops": 0, "seed": 7}, 0, [point], points_seed=1) == 7  # a re-run


def test_asha_never_stops_a_fixed_point() -> None:
    """A standard far below the rung's cut still runs on (its run is its selection run); a sampled trial as weak is
    stopped."""
    from ray.tune.experiment import Trial
    from ray.tune.schedulers import TrialScheduler

    from autoaug.search.hooks import asha

    point = {"base": "cropflip", "n_ops": 0}
    scheduler = asha("test", epochs=10, grace=8, points=[point])
    scheduler.set_search_properties("val_acc", "max")
    trials = [Trial("__fake", config={"base": "none", "n_ops": i + 1}, stub=True) for i in range(3)]
    weak_point, weak = Trial("__fake", config=dict(point), stub=True), Trial("__fake", config={"n_ops": 9}, stub=True)
    for t in [*trials, weak_point, weak]:
        scheduler.on_trial_add(None, t)
    for i, t in enumerate(trials):
        assert scheduler.on_trial_result(None, t, {"epoch": 8, "val_acc": 0.9 + i / 100}) == TrialScheduler.CONTINUE
    assert scheduler.on_trial_result(None, weak, {"epoch": 8, "val_acc": 0.1}) == TrialScheduler.STOP
    assert scheduler.on_trial_result(None, weak_point, {"epoch": 8, "val_acc": 0.1}) == TrialScheduler.CONTINUE
