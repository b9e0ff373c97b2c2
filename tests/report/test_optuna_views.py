"""The search's Optuna study in the report: history, fANOVA importances, parallel coordinates."""

from __future__ import annotations

from pathlib import Path

import optuna

from autoaug.report.plots import optuna_views


def test_optuna_views_of_a_stored_study(tmp_path: Path) -> None:
    storage = tmp_path / "optuna.db"
    study = optuna.create_study(study_name="s", storage=f"sqlite:///{storage}", direction="maximize",
                                sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda t: t.suggest_float("rotate.magnitude", 0, 1) - 0.1 * t.suggest_float("noise", 0, 1)
                   + 0 * t.suggest_int("n", 0, 3), n_trials=12)
    figures = optuna_views(storage, "s", tmp_path, top=2)
    assert [p.name for p, _ in figures] == ["optuna_history.png", "optuna_importances.png", "optuna_parallel.png"]
    assert all(p.stat().st_size > 10_000 for p, _ in figures)
    assert "2 most important" in figures[2][1]


def test_a_study_without_variance_gets_its_history_only(tmp_path: Path) -> None:
    storage = tmp_path / "optuna.db"
    study = optuna.create_study(study_name="flat", storage=f"sqlite:///{storage}", direction="maximize",
                                sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda t: 0.5 + 0 * t.suggest_float("x", 0, 1), n_trials=5)
    assert [p.name for p, _ in optuna_views(storage, "flat", tmp_path)] == ["optuna_history.png"]
