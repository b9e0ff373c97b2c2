"""Augmentation speed: autoaug's batched ops vs torchvision.transforms.v2 per image vs kornia batched.

For every op and preset, at 256 x 1x28x28 and 256 x 3x32x32: median ms per batch, and the ratios
torchvision / autoaug and kornia / autoaug (above 1 means autoaug is faster). Then the share of a SmallCNN
training step that each preset's augmentation takes. Needs the ``bench`` extra (kornia).

    python benchmarks/bench_augment.py --threads 2 --out reports/benchmarks.md
"""

from __future__ import annotations

import argparse
import math
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import write_section

from autoaug.augment.augmenter import Augmenter
from autoaug.augment.ops import OPS
from autoaug.augment.policy import OpConfig, Policy
from autoaug.augment.presets import PRESETS
from autoaug.machine import describe
from autoaug.train.models import build_model

BATCH = 256
SHAPES = {"28x28x1": (BATCH, 1, 28, 28), "32x32x3": (BATCH, 3, 32, 32)}


def median_ms(fn: Callable[[], object], reps: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def torchvision_op(name: str) -> Callable[[torch.Tensor], torch.Tensor] | None:
    import torchvision.transforms.v2 as v2

    table = {
        "rotate": v2.RandomRotation(30), "shear_x": v2.RandomAffine(0, shear=(-17, 17)),
        "shear_y": v2.RandomAffine(0, shear=(0, 0, -17, 17)), "translate_x": v2.RandomAffine(0, translate=(0.3, 0)),
        "translate_y": v2.RandomAffine(0, translate=(0, 0.3)), "zoom": v2.RandomAffine(0, scale=(0.8, 1.2)),
        "hflip": v2.RandomHorizontalFlip(1.0), "vflip": v2.RandomVerticalFlip(1.0),
        "brightness": v2.ColorJitter(brightness=0.5), "contrast": v2.ColorJitter(contrast=0.5),
        "saturation": v2.ColorJitter(saturation=0.5), "sharpness": v2.RandomAdjustSharpness(2.0, p=1.0),
        "posterize": v2.RandomPosterize(4, p=1.0), "solarize": v2.RandomSolarize(0.5, p=1.0),
        "autocontrast": v2.RandomAutocontrast(p=1.0), "equalize": v2.RandomEqualize(p=1.0),
        "invert": v2.RandomInvert(p=1.0), "gaussian_noise": v2.GaussianNoise(sigma=0.1),
        "gaussian_blur": v2.GaussianBlur(7, sigma=(0.1, 2.0)), "cutout": v2.RandomErasing(p=1.0, value=0.5),
        "crop": v2.RandomCrop(28, padding=4),
    }
    return table.get(name)


def torchvision_preset(name: str) -> Callable[[torch.Tensor], torch.Tensor] | None:
    import torchvision.transforms.v2 as v2

    return {
        "baseline": v2.Compose([v2.RandomRotation(15), v2.RandomHorizontalFlip(), v2.ColorJitter(brightness=0.2),
                                v2.RandomAffine(0, scale=(0.8, 1.2)), v2.GaussianNoise(sigma=0.1)]),
        "randaugment": v2.RandAugment(num_ops=2, magnitude=9),
        "trivialaugment": v2.TrivialAugmentWide(),
    }.get(name)


def kornia_op(name: str) -> Callable[[torch.Tensor], torch.Tensor] | None:
    import kornia.augmentation as K

    table = {
        "rotate": lambda: K.RandomRotation(30.0, p=1.0), "shear_x": lambda: K.RandomAffine(0, shear=(-17, 17), p=1.0),
        "shear_y": lambda: K.RandomAffine(0, shear=(0, 0, -17, 17), p=1.0),
        "translate_x": lambda: K.RandomAffine(0, translate=(0.3, 0), p=1.0),
        "translate_y": lambda: K.RandomAffine(0, translate=(0, 0.3), p=1.0),
        "zoom": lambda: K.RandomAffine(0, scale=(0.8, 1.2), p=1.0),
        "hflip": lambda: K.RandomHorizontalFlip(p=1.0), "vflip": lambda: K.RandomVerticalFlip(p=1.0),
        "brightness": lambda: K.RandomBrightness((0.5, 1.5), p=1.0),
        "contrast": lambda: K.RandomContrast((0.5, 1.5), p=1.0),
        "saturation": lambda: K.RandomSaturation((0.5, 1.5), p=1.0),
        "sharpness": lambda: K.RandomSharpness(1.0, p=1.0), "posterize": lambda: K.RandomPosterize(4, p=1.0),
        "solarize": lambda: K.RandomSolarize(0.1, 0.1, p=1.0), "autocontrast": lambda: K.RandomAutoContrast(p=1.0),
        "equalize": lambda: K.RandomEqualize(p=1.0), "invert": lambda: K.RandomInvert(p=1.0),
        "gaussian_noise": lambda: K.RandomGaussianNoise(std=0.1, p=1.0),
        "gaussian_blur": lambda: K.RandomGaussianBlur((7, 7), (0.1, 2.0), p=1.0),
        "cutout": lambda: K.RandomErasing(p=1.0), "crop": lambda: K.RandomCrop((28, 28), padding=4),
    }
    return table[name]() if name in table else None


def kornia_preset(name: str) -> Callable[[torch.Tensor], torch.Tensor] | None:
    import kornia.augmentation as K
    import kornia.augmentation.auto as A

    return {
        "baseline": lambda: K.AugmentationSequential(
            K.RandomRotation(15.0, p=1.0), K.RandomHorizontalFlip(), K.RandomBrightness((0.8, 1.2), p=1.0),
            K.RandomAffine(0, scale=(0.8, 1.2), p=1.0), K.RandomGaussianNoise(std=0.1, p=1.0)),
        "randaugment": lambda: A.RandAugment(n=2, m=9),
        "trivialaugment": lambda: A.TrivialAugment(),
    }.get(name, lambda: None)()


def per_image(transform: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> Callable[[], object]:
    return lambda: torch.stack([transform(img) for img in x])


def _crop_size(name: str, t: Callable | None, size: int) -> Callable | None:
    """Crop transforms are built for 28 px; rebuild them for the shape at hand."""
    if name != "crop" or t is None:
        return t
    import kornia.augmentation as K
    import torchvision.transforms.v2 as v2

    return v2.RandomCrop(size, padding=4) if isinstance(t, v2.RandomCrop) else K.RandomCrop((size, size), padding=4)


def row(label: str, ours: Callable[[], object], tv: Callable | None, ko: Callable | None, x: torch.Tensor,
        reps: int) -> tuple[str, float, float, float]:
    a = median_ms(ours, reps)
    t = median_ms(per_image(tv, x), max(3, reps // 10)) if tv is not None else math.nan
    k = math.nan
    if ko is not None:
        try:
            k = median_ms(lambda: ko(x), reps)
        except Exception:
            k = math.nan
    return label, a, t, k


def fmt(v: float, digits: int = 2) -> str:
    return "n/a" if math.isnan(v) else f"{v:.{digits}f}"


def train_step_ms(shape: tuple[int, ...], reps: int) -> float:
    model = build_model("smallcnn", shape[1], 10, shape[2])
    opt = torch.optim.Adam(model.parameters())
    x, y = torch.rand(shape), torch.randint(0, 10, (shape[0],))

    def step() -> None:
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    return median_ms(step, reps)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--reps", type=int, default=30)
    p.add_argument("--out", type=Path, default=None, help="also write the tables as markdown here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    lines = []
    for shape_name, shape in SHAPES.items():
        x = torch.randint(0, 256, shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(0)).float() / 255
        rows = []
        for name, spec in OPS.items():
            if name == "identity":
                continue
            aug = Augmenter(Policy(ops={name: OpConfig(0.3 if spec.has_magnitude else 0.0)}, name=name))
            tv, ko = _crop_size(name, torchvision_op(name), shape[2]), _crop_size(name, kornia_op(name), shape[2])
            rows.append(row(f"op {name}", lambda a=aug, x=x: a(x), tv, ko, x, args.reps))
        for name in PRESETS:
            if name == "none" or PRESETS[name].mixes:  # mixing needs labels: bench_aug_share.py times it
                continue
            aug = Augmenter(name)
            rows.append(row(f"**preset {name}**", lambda a=aug, x=x: a(x), torchvision_preset(name),
                            kornia_preset(name), x, args.reps))
        step = train_step_ms(shape, args.reps)
        lines += [f"### {BATCH} x {shape_name}, {args.threads} threads (median ms per batch)", "",
                  "| what | autoaug | torchvision v2 per image | kornia batched | torchvision / autoaug "
                  "| kornia / autoaug | share of a SmallCNN step |", "|---|---|---|---|---|---|---|"]
        for label, a, t, k in rows:
            share = f"{100 * a / step:.1f}%" if label.startswith("**") else ""
            lines.append(f"| {label} | {fmt(a)} | {fmt(t, 1)} | {fmt(k)} | {fmt(t / a, 0)}x | {fmt(k / a, 1)}x "
                         f"| {share} |")
        lines += ["", f"SmallCNN training step (forward, backward, Adam) on this batch: {step:.1f} ms.", ""]
        print("\n".join(lines[-len(rows) - 6 :]), flush=True)
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    import kornia
    import torchvision

    header = [
        f"Machine: {describe()}; {args.threads} torch threads, CPU; "
        f"Python {platform.python_version()}, torch {torch.__version__}, torchvision {torchvision.__version__}, "
        f"kornia {kornia.__version__}; git {rev}.", "",
        "Command: `python benchmarks/bench_augment.py --threads 2 --out reports/benchmarks.md`. Ops run at magnitude "
        "0.3 with probability 1; the peers use comparable ranges. torchvision runs its v2 transforms on each image "
        "in a Python loop (how a Dataset applies them); kornia and autoaug take the whole batch.", "",
    ]
    if args.out is not None:
        write_section(args.out, "Augmentation speed", "\n".join(header + lines))


if __name__ == "__main__":
    main()
