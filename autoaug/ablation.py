"""The synthetic-ratio ablation: the same model and policy trained at several synthetic ratios over seeds.

``ablate_synthetic(dataset, ratios=...)`` trains the generator once per seed (cached), runs every
(ratio, seed) as a final run through Ray (:mod:`autoaug.final`), compares each ratio with ratio 0 paired by
seed, and writes ``REPORTS/<dataset>-synthetic-<timestamp>/``: ``ablation.md``, ``ablation.csv``,
``runs.json``, ``ratio.png`` (test accuracy against the ratio) and ``samples.png`` (a sample grid per class).
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

from autoaug.errors import AutoaugError
from autoaug.policy import Policy, Synthetic, resolve_policy


def ratio_policies(policy: Policy, ratios: Sequence[float], generator: str, epochs: int = 20) -> list[Policy]:
    """``policy`` at each ratio (sorted, 0 first and always included), named ``ratio=R``."""
    values = sorted({0.0, *(float(r) for r in ratios)})
    return [replace(policy, name=f"ratio={r:g}",
                    synthetic=Synthetic(r, generator, epochs=epochs) if r > 0 else None) for r in values]


def ablate_synthetic(dataset: str, *, ratios: Sequence[float] = (0.0, 0.1, 0.2, 0.3, 0.5), generator: str = "vae",
                     policy: str = "none", seeds: int = 3, model: str = "convnet", epochs: int = 30,
                     train_size: int | None = 4000, batch_size: int = 64, generator_epochs: int = 20,
                     robust_size: int = 2000, out: str | os.PathLike[str] = "reports",
                     cpus_per_trial: float | None = None, gpus_per_trial: float | None = None,
                     address: str | None = None, num_cpus: int | None = None,
                     echo: Callable[[str], None] = print) -> Path:
    """Run the ablation and write its folder; returns the folder."""
    if not isinstance(seeds, int) or seeds < 1:
        raise AutoaugError(f"seeds {seeds!r} must be a positive integer")
    policies = ratio_policies(resolve_policy(policy), ratios, generator, generator_epochs)
    from autoaug.cluster import start_ray, trial_resources
    from autoaug.datasets import load_dataset
    from autoaug.final import FinalSettings, run_finals
    from autoaug.report import by_policy, comparison_rows
    from autoaug.synthetic import fidelity, generator_for, real_frechet
    from autoaug.train import TrainConfig, evaluate, resolve_device, train

    base = TrainConfig(model=model, epochs=epochs, batch_size=batch_size)
    data = load_dataset(dataset, train_size=train_size, seed=0)
    seed_list = list(range(1, seeds + 1))
    generator_seconds, quality = {}, {}
    device = resolve_device("auto")
    echo("reference classifier for the fidelity signals (smallcnn, 5 epochs, real training images)")
    classifier = train(TrainConfig(model="smallcnn", epochs=5, device=str(device)), data, "none").model
    for seed in seed_list:  # once per seed, here, so that the parallel runs only load them
        gen, generator_seconds[seed] = generator_for(generator, data, seed=seed, epochs=generator_epochs,
                                                     device=device, echo=echo)
        quality[seed] = fidelity(gen, classifier, data.val_x, seed=seed)
    quality["real"] = {"synthetic_acc": evaluate(classifier, data.val_x, data.val_y)["acc"],
                       "frechet": real_frechet(classifier, data.train_x[: len(data.val_x)], data.val_x)}
    echo(f"{data.summary()}; {generator} generators ready ({sum(generator_seconds.values()):.0f} s of training); "
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
    folder = Path(out).expanduser().resolve() / f"{data.name}-synthetic-{time.strftime('%Y%m%d-%H%M%S')}"
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    staging.chmod(0o755)
    try:
        _write(staging, data, policies, rows, records, (generator, generator_epochs, generator_seconds, quality),
               base, time.perf_counter() - t0, policy)
        os.replace(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    echo(f"ablation: {folder / 'ablation.md'}")
    return folder


def _write(folder: Path, data: Any, policies: list[Policy], rows: list[dict[str, Any]],
           records: list[dict[str, Any]], generators: tuple[str, int, dict[int, float], dict[Any, Any]], base: Any,
           seconds: float, policy: str) -> None:
    """Table, CSV, records, plots and the Markdown page into ``folder``."""
    import pandas as pd

    from autoaug import plots
    from autoaug.report import _diff, _pm, environment, to_markdown
    from autoaug.synthetic import generator_for, sample_grid

    generator, generator_epochs, generator_seconds, quality = generators
    pd.DataFrame(rows).to_csv(folder / "ablation.csv", index=False)
    (folder / "runs.json").write_text(json.dumps({"records": records, "generator_seconds": generator_seconds,
                                                  "fidelity": quality}, indent=1, default=str))
    ratios = [p.synthetic.ratio if p.synthetic else 0.0 for p in policies]
    plots.ratio_curve(ratios, rows, folder / "ratio.png")
    gen, _ = generator_for(generator, data, seed=1, epochs=generator_epochs, echo=lambda line: None)
    sample_grid(gen, 8, folder / "samples.png")
    table = (["ratio", "n", "test accuracy", "Δ vs ratio 0 [95% CI]", "verdict", "corruption acc", "train s",
              "time vs ratio 0", "generating share"],
             [[f"{r:g}", str(row["n"]), _pm(row, "acc"), _diff(row, "acc"),
               row.get("acc_verdict", "reference" if r == 0 else "no pairs"), _pm(row, "corruption_acc"),
               f"{row['train_seconds_mean']:.0f}", f"{row['time_vs_none']:.2f}x",
               f"{100 * row['synthetic_time_share_mean']:.1f}%"] for r, row in zip(ratios, rows, strict=True)])
    blocks = [
        ("h1", f"autoaug synthetic-ratio ablation: {data.name}"),
        ("p", f"Policy `{policy}` with a share of every training batch generated by the `{generator}` generator, "
              f"{data.summary()}; model `{base.model}`, {base.epochs} epochs, batch {base.batch_size}; seeds "
              f"{', '.join(str(s) for s in generator_seconds)} (one generator per seed, trained on the training "
              "split only). Test split, mean ± std over seeds; Δ is paired by seed with ratio 0, with its 95% "
              "Student t interval."),
        ("table", table),
        ("img", (folder / "ratio.png", "Test accuracy against the synthetic ratio, mean ± std over seeds")),
        ("img", (folder / "samples.png", "Generator samples, one row per class (seed 1)")),
        ("h2", "Generators: quality and cost"),
        ("p", "Fidelity as a classifier trained on the real training images (smallcnn, 5 epochs) sees it: its "
              "accuracy on 2,000 generated images (classes in turn), and the Fréchet distance between its "
              "penultimate features of the validation images and of the generated ones. The `real` row gives "
              "the classifier's own validation accuracy and the distance between real training and validation "
              "images: the floor."),
        ("table", (["generator", "training s", "classifier acc on its images", "Fréchet distance"],
                   [[f"seed {s}", f"{generator_seconds[s]:.0f}", f"{quality[s]['synthetic_acc']:.4f}",
                     f"{quality[s]['frechet']:.2f}"] for s in generator_seconds]
                   + [["real", "—", f"{quality['real']['synthetic_acc']:.4f}", f"{quality['real']['frechet']:.2f}"]])),
        ("p", f"Final training: {seconds:.0f} s wall time for {len(records)} runs, generators excluded. "
              "`generating share` is the share of a run's training time spent generating images."),
        ("h2", "Environment"),
        ("table", (["what", "value"], [[k, v] for k, v in environment().items()])),
    ]
    (folder / "ablation.md").write_text(to_markdown(blocks))
