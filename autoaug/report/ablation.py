"""Synthetic data in reports: the synthetic-ratio ablation and the generator section of a report.

``ablate_synthetic(dataset, ratios=...)`` trains the same model and policy at several synthetic ratios over
seeds (the generators trained once per seed, cached), compares each ratio with ratio 0 paired by seed, and
writes ``REPORTS/<dataset>-synthetic-<timestamp>/``: ``ablation.md``, ``ablation.csv``, ``runs.json``,
``ratio.png`` (test accuracy against the ratio) and ``samples-KIND.png`` (a sample grid per class).

:func:`generator_quality` and :func:`synthetic_blocks` make the same section for a search report whose
policies mix synthetic images in: the ratio table and plot, the generators' training time, sample grids and
fidelity signals.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from autoaug.augment.policy import Policy, Synthetic
from autoaug.augment.presets import resolve_policy
from autoaug.errors import AutoaugError
from autoaug.report.document import Block


def ratio_policies(policy: Policy, ratios: Sequence[float], generator: str, epochs: int = 20) -> list[Policy]:
    """``policy`` at each ratio (sorted, 0 first and always included), named ``ratio=R``."""
    values = sorted({0.0, *(float(r) for r in ratios)})
    return [replace(policy, name=f"ratio={r:g}",
                    synthetic=Synthetic(r, generator, epochs=epochs) if r > 0 else None) for r in values]


def generator_quality(data: Any, policies: Sequence[Policy], seeds: Sequence[int],
                      echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Training seconds and fidelity of every generator the ``policies`` use on ``seeds`` (trained now where
    not cached), and the ``real`` floor, as a classifier trained on the real training images (smallcnn, 5
    epochs) sees them: ``{"generators": [{kind, epochs, seed, seconds, synthetic_acc, frechet}], "real": …}``."""
    from autoaug.data.synthetic import fidelity, generator_for, real_frechet
    from autoaug.train.trainer import TrainConfig, evaluate, resolve_device, train

    used = sorted({(p.synthetic.generator, p.synthetic.epochs) for p in policies if p.synthetic})
    device = resolve_device("auto")
    echo("reference classifier for the fidelity signals (smallcnn, 5 epochs, real training images)")
    classifier = train(TrainConfig(model="smallcnn", epochs=5, device=str(device)), data, "none").model
    out: list[dict[str, Any]] = []
    for kind, epochs in used:
        for seed in seeds:
            gen, seconds = generator_for(kind, data, seed=seed, epochs=epochs, device=device, echo=echo)
            out.append({"kind": kind, "epochs": epochs, "seed": seed, "seconds": seconds,
                        **fidelity(gen, classifier, data.val_x, seed=seed)})
    real = {"synthetic_acc": evaluate(classifier, data.val_x, data.val_y)["acc"],
            "frechet": real_frechet(classifier, data.train_x[: len(data.val_x)], data.val_x)}
    return {"generators": out, "real": real}


def synthetic_blocks(folder: Path, data: Any, policies: Sequence[Policy], rows: Sequence[dict[str, Any]],
                     quality: dict[str, Any], reference: str = "none", also: Sequence[str] = ()) -> list[Block]:
    """The ratio table and plot (``ratio.png``), a sample grid per generator (``samples-KIND.png``) and the
    generators' cost and fidelity, for the ``policies`` (and their summary ``rows``) of one comparison that
    mix generated images in, beside ``reference`` and the policies named in ``also``."""
    from autoaug.data.synthetic import generator_for, sample_grid
    from autoaug.report import plots
    from autoaug.report.summary import diff, pm

    by_name = {p.name: p for p in policies}
    shown = sorted((r for r in rows if by_name[r["policy"]].synthetic or r["policy"] in (reference, *also)),
                   key=lambda r: _ratio(by_name[r["policy"]]))
    ratios = [_ratio(by_name[r["policy"]]) for r in shown]
    plots.ratio_curve(ratios, shown, folder / "ratio.png", labels=[r["policy"] for r in shown])
    blocks: list[Block] = [
        ("h2", "Synthetic data"),
        ("p", f"The share of every training batch that a class-conditional generator makes, for each policy that "
              f"mixes generated images in, beside `{reference}` (ratio 0). Generated images take uniformly drawn "
              "labels; every real training image is still seen once per epoch, so a run takes more steps."),
        ("table", (["policy", "generator", "ratio", "ops", "test accuracy", f"Δ vs {reference} [95% CI]", "verdict",
                    "time vs " + reference, "generating share"],
                   [[r["policy"], _generator(by_name[r["policy"]]), f"{x:.3f}",
                     ", ".join(by_name[r["policy"]].ops) or "—", pm(r, "acc"), diff(r, "acc"),
                     r.get("acc_verdict", "reference" if r["policy"] == reference else "no pairs"),
                     f"{r['time_vs_none']:.2f}x", f"{100 * r['synthetic_time_share_mean']:.1f}%"]
                    for x, r in zip(ratios, shown, strict=True)])),
        ("img", (folder / "ratio.png", "Test accuracy against the synthetic ratio, mean ± std over seeds")),
    ]
    gens = quality["generators"]
    for kind, epochs in sorted({(g["kind"], g["epochs"]) for g in gens}):
        seed = min(g["seed"] for g in gens if g["kind"] == kind)
        gen, _ = generator_for(kind, data, seed=seed, epochs=epochs, echo=lambda line: None)
        sample_grid(gen, 8, folder / f"samples-{kind}.png")
        blocks.append(("img", (folder / f"samples-{kind}.png", f"`{kind}` samples, one row per class (seed {seed})")))
    real = quality["real"]
    blocks += [
        ("p", "Generators are trained on the training split only, once per (generator, epochs, seed) and cached; a "
              "run with seed s uses the one of seed s. Fidelity as a classifier trained on the real training images "
              "(smallcnn, 5 epochs) sees it: its accuracy on 2,000 generated images (classes in turn), and the "
              "Fréchet distance between its penultimate features of the validation images and of the generated "
              "ones. The `real` row gives the classifier's own validation accuracy and the distance between real "
              "training and validation images: the floor."),
        ("table", (["generator", "epochs", "seed", "training s", "classifier acc on its images", "Fréchet distance"],
                   [[g["kind"], str(g["epochs"]), str(g["seed"]), f"{g['seconds']:.0f}", f"{g['synthetic_acc']:.4f}",
                     f"{g['frechet']:.2f}"] for g in gens]
                   + [["real", "—", "—", "—", f"{real['synthetic_acc']:.4f}", f"{real['frechet']:.2f}"]])),
        ("p", f"Generator training in all: {sum(g['seconds'] for g in gens):.0f} s for the runs compared here."),
    ]
    return blocks


def _ratio(policy: Policy) -> float:
    return policy.synthetic.ratio if policy.synthetic else 0.0


def _generator(policy: Policy) -> str:
    return f"{policy.synthetic.generator} ({policy.synthetic.epochs} epochs)" if policy.synthetic else "—"


def ablate_synthetic(dataset: str, *, ratios: Sequence[float] = (0.0, 0.1, 0.2, 0.3, 0.5), generator: str = "vae",
                     policy: str = "none", seeds: int = 3, model: str = "convnet", epochs: int = 30,
                     train_size: int | None = 4000, batch_size: int = 64, generator_epochs: int = 20,
                     robust_size: int = 500, out: str | os.PathLike[str] = "reports",
                     cpus_per_trial: float | None = None, gpus_per_trial: float | None = None,
                     address: str | None = None, num_cpus: int | None = None,
                     echo: Callable[[str], None] = print) -> Path:
    """Run the ablation and write its folder; returns the folder."""
    if not isinstance(seeds, int) or seeds < 1:
        raise AutoaugError(f"seeds {seeds!r} must be a positive integer")
    policies = ratio_policies(resolve_policy(policy), ratios, generator, generator_epochs)
    from autoaug.data.datasets import load_dataset
    from autoaug.data.sources import folder_name
    from autoaug.report.finals import FinalSettings, run_finals
    from autoaug.report.summary import by_policy, comparison_rows
    from autoaug.search import start_ray, trial_resources
    from autoaug.train.trainer import TrainConfig

    base = TrainConfig(model=model, epochs=epochs, batch_size=batch_size)
    data = load_dataset(dataset, train_size=train_size, seed=0)
    seed_list = list(range(1, seeds + 1))
    quality = generator_quality(data, policies, seed_list, echo)  # here, so that the parallel runs only load them
    spent = sum(g["seconds"] for g in quality["generators"])
    echo(f"{data.summary()}; {generator} generators ready ({spent:.0f} s of training); "
         f"{len(policies)} ratios x {seeds} seeds ({model}, {epochs} epochs)")
    import ray

    started = start_ray(address, num_cpus)
    t0 = time.perf_counter()
    try:
        resources, mem_fraction = trial_resources(cpus_per_trial, gpus_per_trial)
        settings = FinalSettings(base, robust_size=min(robust_size, len(data.test_y)))

        def on_record(record: dict[str, Any]) -> None:
            what = f"FAILED ({record['error']})" if "error" in record else f"test acc {record['test']['acc']:.4f}"
            echo(f"[{time.perf_counter() - t0:6.0f} s] {record['policy']} seed {record['seed']}: {what}")

        records = run_finals(policies, seed_list, data, settings, resources=resources,
                             gpu_memory_fraction=mem_fraction, on_record=on_record)
    finally:
        if started:
            ray.shutdown()
    order = [p.name for p in policies]
    records.sort(key=lambda r: (order.index(r["policy"]), r["seed"]))
    groups = by_policy(records, order)
    if order[0] not in groups:
        raise AutoaugError("every run at ratio 0 failed: nothing to compare with")
    rows = comparison_rows(groups, reference_name=order[0])
    folder = Path(out).expanduser().resolve() / f"{folder_name(data.name)}-synthetic-{time.strftime('%Y%m%d-%H%M%S')}"
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    staging.chmod(0o755)
    try:
        _write(staging, data, policies, rows, records, quality, base, time.perf_counter() - t0, policy)
        os.replace(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    echo(f"ablation: {folder / 'ablation.md'}")
    return folder


def _write(folder: Path, data: Any, policies: list[Policy], rows: list[dict[str, Any]],
           records: list[dict[str, Any]], quality: dict[str, Any], base: Any, seconds: float, policy: str) -> None:
    """Table, CSV, records, plots and the Markdown page into ``folder``."""
    import pandas as pd

    from autoaug.report.document import environment, to_markdown

    pd.DataFrame(rows).to_csv(folder / "ablation.csv", index=False)
    (folder / "runs.json").write_text(json.dumps({"records": records, "generators": quality}, indent=1, default=str))
    seeds = ", ".join(str(s) for s in sorted({r["seed"] for r in records}))
    blocks: list[Block] = [
        ("h1", f"autoaug synthetic-ratio ablation: {data.name}"),
        ("p", f"Policy `{policy}` with a share of every training batch generated, {data.summary()}; model "
              f"`{base.model}`, {base.epochs} epochs, batch {base.batch_size}; seeds {seeds}. Test split, mean ± std "
              "over seeds; Δ is paired by seed with ratio 0, with its 95% Student t interval."),
        *synthetic_blocks(folder, data, policies, rows, quality, reference=policies[0].name),
        ("p", f"Final training: {seconds:.0f} s wall time for {len(records)} runs, generators excluded. "
              "`generating share` is the share of a run's training time spent generating images."),
        ("h2", "Environment"),
        ("table", (["what", "value"], [[k, v] for k, v in environment().items()])),
    ]
    (folder / "ablation.md").write_text(to_markdown(blocks))
