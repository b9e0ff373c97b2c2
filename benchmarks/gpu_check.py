"""The GPU check behind ``benchmarks/gpu_check.sh``: what autoaug does on one CUDA card, in one run.

Sections, each timed and written to the report as it finishes (a section whose packages are missing, or
that fails, says so and the check goes on):

1. sync-free augmentation: every preset under ``torch.cuda.set_sync_debug_mode("error")``;
2. augmentation throughput (images/s) of each preset, autoaug batched vs kornia batched vs torchvision v2 per
   image, at 32 px (batch 256) and 224 px (batch 64);
3. a trial's training and evaluation images/s in fp32 vs ``--precision auto`` (benchmarks/bench_train.py);
4. trials per hour of the same small search with 1, 2, 4 and 8 trials per GPU, and each trial's peak memory
   against its cap (needs ray, optuna, mlflow);
5. a PBT search on the GPU (its exploits);
6. a 2-seed report of the search of section 4.

    python benchmarks/gpu_check.py --out reports/gpu.md
"""

from __future__ import annotations

import argparse
import math
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import TITLE

PRESETS = ("baseline", "randaugment", "trivialaugment")


def cuda_ms(fn: Callable[[], object], reps: int, warmup: int = 3) -> float:
    """Median milliseconds of ``fn`` on the GPU (synchronized around each call)."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def sync_free() -> list[str]:
    from autoaug.augment.augmenter import Augmenter

    x = torch.randint(0, 256, (256, 3, 32, 32), dtype=torch.uint8, device="cuda")
    lines = ["| preset | batches under sync debug mode 'error' |", "|---|---|"]
    for name in PRESETS:
        aug = Augmenter(name)
        aug(x, progress=0.1)  # the first batch of a shape sets up its constants
        torch.cuda.set_sync_debug_mode("error")
        try:
            for p in (0.2, 0.5, 0.9):
                aug(x, progress=p)
            lines.append(f"| {name} | 3 batches, no sync |")
        except RuntimeError as e:
            lines.append(f"| {name} | **synced**: {str(e).splitlines()[0]} |")
        finally:
            torch.cuda.set_sync_debug_mode(0)
    return lines


def throughput() -> list[str]:
    from bench_augment import kornia_preset, torchvision_preset

    from autoaug.augment.augmenter import Augmenter

    lines = ["| preset | size | autoaug img/s | kornia img/s | torchvision v2 per image img/s | autoaug / kornia "
             "| autoaug / torchvision |", "|---|---|---|---|---|---|---|"]
    for size, batch in ((32, 256), (224, 64)):
        x = torch.rand(batch, 3, size, size, device="cuda")
        for name in PRESETS:
            aug = Augmenter(name)
            ours = batch / cuda_ms(lambda a=aug, x=x: a(x), 20) * 1000
            try:
                ko_t = kornia_preset(name).to("cuda")
                ko = batch / cuda_ms(lambda t=ko_t, x=x: t(x), 20) * 1000
            except Exception:  # kornia missing or its op refuses the input
                ko = math.nan
            tv_t = torchvision_preset(name)
            tv = batch / cuda_ms(lambda t=tv_t, x=x: torch.stack([t(img) for img in x]), 3, warmup=1) * 1000
            lines.append(f"| {name} | {size} px | {ours:,.0f} | {ko:,.0f} | {tv:,.0f} | {ours / ko:.1f}x "
                         f"| {ours / tv:.0f}x |")
    return lines


def precision() -> list[str]:
    from bench_train import SHAPES, rates

    lines = ["| model | input | train img/s fp32 | auto | auto / fp32 | eval img/s fp32 | auto | auto resolved to |",
             "|---|---|---|---|---|---|---|---|"]
    for model in ("convnet", "timm:resnet18"):
        shape = SHAPES["32x32x3"]
        (t0, e0, _), (t2, e2, resolved) = (rates(model, shape, v, 20) for v in ("fp32", "auto"))
        lines.append(f"| {model} | 32x32x3 | {t0:,.0f} | {t2:,.0f} | {t2 / t0:.1f}x | {e0:,.0f} | {e2:,.0f} "
                     f"| {resolved} |")
    return lines


def searches(root: Path, state: dict) -> list[str]:
    from autoaug.search.driver import tune_policy

    lines = ["| trials per GPU | trials | wall s | trials per hour | peak memory MB per trial (max) | cap MB |",
             "|---|---|---|---|---|---|"]
    total = torch.cuda.get_device_properties(0).total_memory / 2**20
    for per_gpu in (1, 2, 4, 8):
        t0 = time.perf_counter()
        result = tune_policy("fashion_mnist_small", budget="tiny", trials=per_gpu * 2, epochs=4, train_size=4000,
                             model="convnet", gpus_per_trial=1 / per_gpu, cpus_per_trial=1, scheduler="fifo",
                             storage=root, name=f"per-gpu-{per_gpu}", tracking_uri=f"sqlite:///{root}/mlflow.db",
                             echo=lambda line: None)
        wall = time.perf_counter() - t0
        peak = result.trials["gpu_memory_mb"].max() if "gpu_memory_mb" in result.trials else math.nan
        cap = total / per_gpu if per_gpu > 1 else total
        lines.append(f"| {per_gpu} | {len(result.trials)} | {wall:.0f} | {3600 * len(result.trials) / wall:.0f} "
                     f"| {peak:,.0f} | {cap:,.0f} |")
        state["search"] = result.output_dir
    return lines


def pbt(root: Path, state: dict) -> list[str]:
    from autoaug.search.driver import tune_policy

    t0 = time.perf_counter()
    result = tune_policy("fashion_mnist_small", budget="tiny", trials=4, epochs=4, train_size=2000, scheduler="pbt",
                         gpus_per_trial=0.25, cpus_per_trial=1, storage=root, name="pbt",
                         tracking_uri=f"sqlite:///{root}/mlflow.db", echo=lambda line: None)
    stages = len(result.best_policy.stages) + 1
    return [f"PBT, 4 trials x 4 epochs on the GPU: {time.perf_counter() - t0:.0f} s; the best lineage has "
            f"{stages} stage(s); best val_acc {result.best_val_acc:.4f}."]


def report(root: Path, state: dict) -> list[str]:
    from autoaug.report.reporter import make_report

    t0 = time.perf_counter()
    rep = make_report(state["search"], seeds=2, out=root / "reports", gpus_per_trial=0.25, cpus_per_trial=1,
                      echo=lambda line: None)
    rows = [f"| {r['policy']} | {r['acc_mean']:.4f} | {r.get('acc_diff', 0.0):+.4f} | {r['train_seconds_mean']:.1f} "
            f"| {r['eval_seconds_mean']:.1f} |" for r in rep.rows]
    return [f"2-seed report of the 8-trial search: {time.perf_counter() - t0:.0f} s.", "",
            "| policy | test acc | Δ vs none | train s | eval s |", "|---|---|---|---|---|", *rows]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("reports/gpu.md"))
    p.add_argument("--budget-seconds", type=float, default=450, help="skip sections that would start after this")
    args = p.parse_args()
    if not torch.cuda.is_available():
        sys.exit("gpu_check: torch sees no CUDA device here; run it on a machine with a GPU")
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    props = torch.cuda.get_device_properties(0)
    doc = [TITLE.replace("benchmarks", "GPU check"), "",
           f"Machine: {props.name} ({props.total_memory / 2**30:.0f} GiB), {platform.machine()}; Python "
           f"{platform.python_version()}, torch {torch.__version__}; git {rev}. "
           "Command: `bash benchmarks/gpu_check.sh`.",
           ""]
    start, state = time.perf_counter(), {}
    root = Path(tempfile.mkdtemp(prefix="autoaug-gpu-check-"))
    sections = [("Sync-free augmentation", sync_free), ("Augmentation throughput", throughput),
                ("A trial's speed per precision", precision),
                ("Trials per hour and memory per trial", lambda: searches(root, state)),
                ("PBT on the GPU", lambda: pbt(root, state)), ("A 2-seed report", lambda: report(root, state))]
    for title, section in sections:
        elapsed = time.perf_counter() - start
        if elapsed > args.budget_seconds:
            body = [f"Not run: the check had used {elapsed:.0f} s of its {args.budget_seconds:.0f} s."]
        else:
            t0 = time.perf_counter()
            try:
                body = [*section(), "", f"({time.perf_counter() - t0:.0f} s)"]
            except Exception as e:
                body = [f"Failed: {type(e).__name__}: {e}".splitlines()[0], "", "```",
                        *traceback.format_exc().splitlines()[-6:], "```"]
        doc += [f"## {title}", "", *body, ""]
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(doc))  # what is done so far survives a timeout
        print("\n".join([f"## {title}", *body]), flush=True)


if __name__ == "__main__":
    main()
