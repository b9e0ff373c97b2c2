"""What each ``autoaug`` command does, once :mod:`autoaug.cli` has parsed its arguments: each a thin layer over
the Python API, with its heavy imports inside (``autoaug --help`` stays fast)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any


def cmd_ops(args: argparse.Namespace) -> int:
    from autoaug.augment.ops import OPS

    print(f"{'op':<16}{'magnitude 0..1 maps to':<34}extra randomness")
    for spec in OPS.values():
        extra = "normal noise" if spec.dense_noise else (f"{spec.n_uniform} uniforms" if spec.n_uniform else "")
        print(f"{spec.name:<16}{spec.describe():<34}{extra}")
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    from autoaug.data.sources import describe_sources

    print(f"{'dataset':<22}{'offline':<9}description")
    for name, description, offline in describe_sources():
        print(f"{name:<22}{'yes' if offline else 'no':<9}{description}")
    return 0


def _fmt_epoch(m: dict[str, Any], epochs: int) -> str:
    val = f"val loss {m['val_loss']:.4f} acc {m['val_acc']:.4f}" if "val_acc" in m else f"{'(not validated)':<26}"
    return (f"  epoch {m['epoch']:>3}/{epochs}  train loss {m['train_loss']:.4f} acc {m['train_acc']:.4f}"
            f"  | {val}"
            f"  | {m['epoch_seconds']:.1f} s, {m['images_per_second']:,.0f} img/s,"
            f" aug {m['aug_ms_per_batch']:.2f} ms/batch")


def cmd_train(args: argparse.Namespace) -> int:
    from autoaug.augment.presets import resolve_policy
    from autoaug.data.datasets import load_dataset
    from autoaug.report.prose import mechanism
    from autoaug.stats import mean_std
    from autoaug.train.trainer import TrainConfig, evaluate, train
    from autoaug.train.weights import FINETUNE, check_weights, input_size

    policy = resolve_policy(args.policy)
    check_weights(args.model, args.weights)
    image_size = args.image_size
    if args.weights and image_size is None and (image_size := input_size(args.model)):
        print(f"{args.model} was pretrained on {image_size}x{image_size} images: the data is resized to that "
              "(--image-size N for another size)")
    recipe = FINETUNE if args.weights else {k: getattr(TrainConfig, k) for k in FINETUNE}  # TrainConfig's defaults
    recipe = {k: recipe[k] if getattr(args, k) is None else getattr(args, k) for k in recipe}
    configs = [
        TrainConfig(model=args.model, epochs=args.epochs, batch_size=args.batch_size, lr_schedule=args.lr_schedule,
                    seed=args.seed + i, device=args.device, precision=args.precision, compile=args.compile,
                    weights=args.weights, **recipe)
        for i in range(args.seeds)
    ]
    if args.output is not None and not args.output.parent.is_dir():
        from autoaug.errors import AutoaugError

        raise AutoaugError(f"output folder {str(args.output.parent)!r} does not exist")
    t0 = time.perf_counter()
    data = load_dataset(args.dataset, val_size=args.val_size, train_size=args.train_size, seed=args.seed,
                        image_size=image_size)
    print(f"{data.summary()}  (loaded in {time.perf_counter() - t0:.1f} s)")
    start = f", from {'pretrained' if args.weights == 'hub' else args.weights} weights" if args.weights else ""
    print(f"policy {policy.name!r}: {mechanism(policy)}; model {args.model}{start}; "
          f"{args.epochs} epochs, {recipe['optimizer']} lr {recipe['lr']:g} weight decay {recipe['weight_decay']:g}"
          + (f", warmup {recipe['warmup']:g} of the steps" if recipe["warmup"] else ""))
    runs = []
    for cfg in configs:
        print(f"seed {cfg.seed}:")
        result = train(cfg, data, policy, report=lambda m, e=cfg.epochs: print(_fmt_epoch(m, e), flush=True))
        test = evaluate(result.model, data.test_x, data.test_y)
        print(f"  test acc {test['acc']:.4f}  loss {test['loss']:.4f}  ({result.seconds:.1f} s, {result.precision})")
        runs.append({"seed": cfg.seed, "test_acc": test["acc"], "test_loss": test["loss"],
                     "train_seconds": result.seconds, "precision": result.precision, "history": result.history})
    if len(runs) > 1:
        m, s = mean_std([r["test_acc"] for r in runs])
        print(f"test acc over {len(runs)} seeds: {m:.4f} ± {s:.4f} (mean ± std)")
    if args.output is not None:
        out = {"dataset": data.summary(), "policy": policy.to_dict(), "config": configs[0].to_dict(), "runs": runs}
        from autoaug.files import write_text

        write_text(args.output, json.dumps(out, indent=2))
        print(f"wrote {args.output}")
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    print(f"autoaug search {args.dataset}: loading the data and starting Ray", flush=True)  # before the slow imports
    from autoaug.errors import AutoaugError
    from autoaug.search import tune_policy

    if args.save_policy is not None and not args.save_policy.resolve().parent.is_dir():
        raise AutoaugError(f"folder of --save-policy {str(args.save_policy)!r} does not exist")
    if args.report:
        from autoaug.report import compared_policies

        compared_policies(args.compare or [])  # a bad --compare fails now, not after the search
    result = tune_policy(args.dataset, space=args.space, model=args.model, trials=args.trials, epochs=args.epochs,
                         budget=args.budget, train_size=args.train_size, image_size=args.image_size,
                         weights=args.weights,
                         cpus_per_trial=args.cpus_per_trial,
                         gpus_per_trial=args.gpus_per_trial, seed=args.seed, address=args.address,
                         storage=args.storage, name=args.name, resume=args.resume, tracking_uri=args.tracking_uri,
                         scheduler=args.scheduler, precision=args.precision, compile=args.compile,
                         select=args.select, system_metrics=args.system_metrics,
                         echo=lambda line: print(line, flush=True), live=sys.stdout.isatty())
    from autoaug.report import describe
    from autoaug.search import note_report

    record = result.record
    n = len(record.selection["seeds"]) if record.selection else 0
    over = f" (mean over {n} fresh seeds)" if n > 1 else " (on a fresh seed)" if n else ""
    print(f"best policy: val_acc {result.best_val_acc:.4f}{over}: {describe(result.best_policy)}")
    frame = result.trials
    for _, row in frame[frame["preset"] != ""].iterrows():
        how = "completed" if row["epoch"] >= frame["epoch"].max() else f"stopped by ASHA after epoch {row['epoch']}"
        print(f"  the {row['preset']!r} point: val_acc {row['val_acc']:.4f} ({how})")
    if args.save_policy is not None:
        result.best_policy.save(args.save_policy)
    print(f"saved to {args.save_policy or result.policy_path}; all trials in {result.output_dir / 'trials.csv'}")
    size = f" --train-size {record.train_size}" if record.train_size else ""
    recipe = "".join(f" --{k.replace('_', '-')} {v}" for k, v in record.recipe().items() if k != "warmup" or v)
    print(f"train with it: autoaug train {args.dataset} --policy {result.policy_path} --model {record.model} "
          f"--epochs {record.epochs} --batch-size {record.batch_size}{recipe}{size}")
    ui = f"autoaug ui {result.output_dir}"
    print(f"review it: {ui}  (MLflow run {result.mlflow_run_id})")
    if not args.report:
        note_report(result.output_dir, None)
        return 0
    from autoaug.report import make_report

    report = make_report(result.output_dir, seeds=args.report_seeds, out=args.reports, compare=args.compare,
                         tracking_uri=args.tracking_uri, cpus_per_trial=args.cpus_per_trial,
                         gpus_per_trial=args.gpus_per_trial, address=args.address,
                         system_metrics=args.system_metrics,
                         echo=lambda line: print(line, flush=True), live=sys.stdout.isatty())
    note_report(result.output_dir, report.folder)
    _print_table(report.rows)
    return 0


def _print_table(rows: list[dict[str, Any]]) -> None:
    """The report's accuracy columns, aligned."""
    from autoaug.report.summary import main_table

    header, body = main_table(rows)
    table = [header[:5], *(row[:5] for row in body)]
    widths = [max(len(r[i]) for r in table) for i in range(5)]
    for r in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())


def cmd_report(args: argparse.Namespace) -> int:
    from autoaug.report import make_report

    _print_table(make_report(args.search, seeds=args.seeds, out=args.out, compare=args.compare,
                             tracking_uri=args.tracking_uri,
                             robust_size=args.robust_size, cpus_per_trial=args.cpus_per_trial,
                             gpus_per_trial=args.gpus_per_trial, address=args.address, precision=args.precision,
                             system_metrics=args.system_metrics,
                             echo=lambda line: print(line, flush=True), live=sys.stdout.isatty()).rows)
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from autoaug.data.datasets import load_dataset
    from autoaug.data.names import GENERATORS
    from autoaug.data.sources import folder_name
    from autoaug.data.synthetic import cache_path, generator_for, sample_grid
    from autoaug.errors import AutoaugError, choice_error
    from autoaug.train.trainer import resolve_device

    if args.model not in GENERATORS:
        raise choice_error("generator", args.model, GENERATORS)
    out = args.out or Path(f"{folder_name(args.dataset)}-{args.model}-samples.png")
    if not out.resolve().parent.is_dir():
        raise AutoaugError(f"folder of --out {str(out)!r} does not exist")
    device = resolve_device(args.device)
    data = load_dataset(args.dataset, train_size=args.train_size, seed=args.seed)
    print(f"{data.summary()}; {args.model} on the {len(data.train_y)} training images")
    gen, seconds = generator_for(args.model, data, seed=args.seed, epochs=args.epochs, device=device,
                                 echo=lambda line: print(line, flush=True))
    sample_grid(gen, args.per_class, out, seed=args.seed)
    print(f"generator: {cache_path(gen.spec)} (trained in {seconds:.1f} s); samples: {out}")
    return 0


def cmd_ablate_synthetic(args: argparse.Namespace) -> int:
    from autoaug.report.ablation import ablate_synthetic

    ablate_synthetic(args.dataset, ratios=args.ratios, generator=args.generator, policy=args.policy,
                     seeds=args.seeds, model=args.model, epochs=args.epochs, train_size=args.train_size,
                     generator_epochs=args.generator_epochs, out=args.out, cpus_per_trial=args.cpus_per_trial,
                     gpus_per_trial=args.gpus_per_trial, address=args.address,
                     echo=lambda line: print(line, flush=True))
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    import subprocess

    from autoaug.search import store_of

    uri, why = (args.tracking_uri, "as given") if args.tracking_uri else store_of(args.search, args.storage)
    print(f"MLflow UI for {uri} ({why}) at http://127.0.0.1:{args.port}  (Ctrl-C stops it)", flush=True)
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", "127.0.0.1",
           "--port", str(args.port), "--workers", "1"]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    proc = subprocess.Popen(cmd, env=env)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        proc.wait(timeout=30)
        return 0


def cmd_export(args: argparse.Namespace) -> int:
    from autoaug.augment.presets import resolve_policy
    from autoaug.errors import choice_error

    if args.to != "torchvision":
        raise choice_error("export target", args.to, ["torchvision"])
    from autoaug.augment.export import python_source

    print(python_source(resolve_policy(args.policy)), end="")
    return 0
