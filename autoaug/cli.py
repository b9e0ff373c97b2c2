"""``autoaug`` command line: a thin layer over the Python API. Heavy imports happen inside the commands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from autoaug import commands
from autoaug.data.names import DEFAULT_DATASET


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _int_from(low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{text!r} must be at least {low}")
        return value

    return parse


_positive_int = _int_from(1)


def _share(text: str) -> float:
    """A resource share per trial: a number of CPUs or GPUs, 0 or more."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be 0 or more")
    return value


def _size(text: str) -> float | int:
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a count or a fraction") from None


def _add_training_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("dataset", nargs="?", default=DEFAULT_DATASET,
                   help=f"dataset name, imagefolder:PATH or parquet:PATH (default: {DEFAULT_DATASET}); "
                        "see 'autoaug datasets'")
    p.add_argument("--model", default="smallcnn", help="smallcnn, lenet5, convnet or timm:NAME (default: smallcnn)")
    p.add_argument("--epochs", type=_positive_int, default=10)
    p.add_argument("--batch-size", type=_positive_int, default=256)
    p.add_argument("--optimizer", default=None,
                   help="adam, adamw or sgd (default: adam; adamw when fine-tuning pretrained weights)")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default: 1e-3; 1e-4 when fine-tuning)")
    p.add_argument("--weight-decay", type=float, default=None, help="(default: 0; 0.05 when fine-tuning)")
    p.add_argument("--warmup", type=float, default=None,
                   help="share of the steps over which the learning rate rises linearly from 0 (default: 0; 0.1 "
                        "when fine-tuning)")
    weights = p.add_mutually_exclusive_group()
    weights.add_argument("--pretrained", dest="weights", action="store_const", const="hub",
                         help="start a timm model from timm's pretrained weights (the Hugging Face cache)")
    weights.add_argument("--weights", dest="weights", type=lambda s: str(Path(s).expanduser().resolve()),
                         metavar="FILE", help="start a timm model from a local state dict or checkpoint")

    p.add_argument("--lr-schedule", default="cosine", help="constant or cosine (default: cosine)")
    p.add_argument("--train-size", type=_positive_int, default=None,
                   help="use only N training images (stratified), e.g. 4000 for a reduced-data setting")
    p.add_argument("--image-size", type=_positive_int, default=None, metavar="N",
                   help="make every image N x N (shorter side to N, centre crop), decoded and cached once "
                        "(default: the images' own; a folder of mixed sizes: 64)")
    p.add_argument("--val-size", type=_size, default=0.1, help="fraction or count carved from train (default: 0.1)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    p.add_argument("--seed", type=int, default=0)
    _compute_arguments(p)


def _compute_arguments(p: argparse.ArgumentParser, default: str | None = "auto", compile: bool = True) -> None:
    """``--precision`` (default None: decided later, e.g. by the search being resumed) and ``--compile``."""
    what = "the search's" if not compile else "auto"
    p.add_argument("--precision", default=default,
                   help="auto (bfloat16 on CPUs with AMX or AVX512-BF16 and on recent GPUs, float16 on older GPUs, "
                        f"else float32), fp32, bf16 or fp16 (default: {what})")
    if compile:
        p.add_argument("--compile", action="store_true", default=None if default is None else False,
                       help="torch.compile the model (pays off on long runs only)")


def _compare_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--compare", type=lambda text: [part for part in text.split(",") if part], default=None,
                   metavar="POLICIES",
                   help="comma-separated policies the report compares with the searched one: preset names "
                        "(feedback and augnet included), NAME=FILE.json or FILE.json; none is always included "
                        "(default: none and every standard that suits the data and the search's space: "
                        "randaugment, trivialaugment, each base alone and with them, cropflip+cutout, and "
                        "autoaugment alone and on cropflip for RGB images)")


def _ratios(text: str) -> list[float]:
    try:
        return [float(part) for part in text.split(",") if part]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of numbers") from None


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="autoaug", description="Find data-augmentation policies for image classifiers.")
    parser.add_argument("--version", action="version", version=f"autoaug {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("train", help="train a model with one policy and print test metrics",
                       description="Train a model with one augmentation policy; print per-epoch progress and "
                                   "final test metrics.")
    _add_training_args(p)
    p.add_argument("--policy", default="none",
                   help="a preset (none, baseline, randaugment, trivialaugment, cropflip, cropflip+randaugment, "
                        "cropflip+trivialaugment, cropflip+cutout, autoaugment, cropflip+autoaugment, rrcflip, "
                        "rrcflip+randaugment, rrcflip+trivialaugment, feedback, augnet) or FILE.json (default: none)")
    p.add_argument("--seeds", type=_positive_int, default=1,
                   help="train with seeds SEED..SEED+N-1 and print mean ± std (default: 1)")
    p.add_argument("--output", type=Path, default=None, help="write the results as JSON to this file")
    p.set_defaults(func=commands.cmd_train)

    p = sub.add_parser("search", help="search an augmentation policy with Ray Tune, Optuna and ASHA",
                       description="Search an augmentation policy: Optuna (TPE) samples policies, ASHA stops weak "
                                   "trials early, each trial trains the model on a share of the machine.")
    p.add_argument("dataset", nargs="?", default=DEFAULT_DATASET, help=f"dataset (default: {DEFAULT_DATASET})")
    p.add_argument("--space", default=None, help="search space name or FILE.yaml (default: the dataset's own, "
                                                 "else 'default')")
    p.add_argument("--model", default=None, help="smallcnn, lenet5, convnet or timm:NAME (default: from --budget)")
    weights = p.add_mutually_exclusive_group()
    weights.add_argument("--pretrained", dest="weights", action="store_const", const="hub",
                         help="start a timm model from timm's pretrained weights (the Hugging Face cache)")
    weights.add_argument("--weights", dest="weights", type=lambda s: str(Path(s).expanduser().resolve()),
                         metavar="FILE", help="start a timm model from a local state dict or checkpoint")
    p.add_argument("--budget", default=None, help="tiny, demo, small, medium or large (default: small)")
    p.add_argument("--trials", type=_positive_int, default=None, help="number of trials (default: from --budget)")
    p.add_argument("--epochs", type=_positive_int, default=None, help="epochs per full trial (default: from --budget)")
    p.add_argument("--train-size", type=_positive_int, default=None,
                   help="use only N training images (default: from --budget, at most what there is)")
    p.add_argument("--image-size", type=_positive_int, default=None, metavar="N",
                   help="make every image N x N (shorter side to N, centre crop), decoded and cached once "
                        "(default: the images' own; a folder of mixed sizes: 64)")
    p.add_argument("--scheduler", default=None,
                   help="asha (Optuna samples, weak trials stop early), fifo (every trial runs all epochs) or pbt "
                        "(population based training changes magnitudes during training; exports the best "
                        "trial's schedule) (default: asha)")
    p.add_argument("--cpus-per-trial", type=_share, default=None)
    p.add_argument("--gpus-per-trial", type=_share, default=None, help="GPU share per trial (default: 0.25 with a GPU)")
    p.add_argument("--address", default=None, help="Ray cluster address (default: RAY_ADDRESS, else a local Ray)")
    p.add_argument("--storage", default="autoaug-runs", help="folder for search results (default: ./autoaug-runs)")
    p.add_argument("--name", default=None, help="search folder name (default: DATASET-TIMESTAMP)")
    p.add_argument("--resume", action="store_true",
                   help="continue the latest unfinished search of DATASET: its trials, then its report")
    p.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (default: sqlite in ./mlruns)")
    p.add_argument("--system-metrics", action="store_true",
                   help="log MLflow's system metrics (CPU, memory, disk, network, GPU) of this machine to the "
                        "search's run, every 10 s")
    p.add_argument("--save-policy", type=Path, default=None, help="also write the best policy to this file")
    p.add_argument("--seed", type=int, default=None, help="root seed of the search (default: 0)")
    p.add_argument("--select", type=_int_from(0), default=None,
                   help="before naming the best, score the K best sampled trials, every standard and none on "
                        "fresh seeds and pick the best mean; 0: the best single trial (default: from --budget, "
                        "small: 1)")
    p.add_argument("--no-report", dest="report", action="store_false",
                   help="skip the final report (retraining the best policy and the presets on several seeds)")
    p.add_argument("--report-seeds", type=_positive_int, default=3, help="seeds of the final report (default: 3)")
    _compute_arguments(p, default=None)
    p.add_argument("--reports", default="reports", help="folder of the reports (default: ./reports)")
    _compare_argument(p)
    p.set_defaults(func=commands.cmd_search)

    p = sub.add_parser("report", help="retrain a search's best policy and the presets over seeds; write the report",
                       description="Retrain the best policy of a finished search, none and the standards for the "
                                   "data (see --compare) on several seeds, evaluate them on the test split, and "
                                   "write report.md, report.html, comparison.csv and plots.")
    p.add_argument("search", help="a search folder (autoaug-runs/NAME) or the MLflow run id of a search")
    p.add_argument("--seeds", type=_positive_int, default=3, help="seeds per policy (default: 3)")
    p.add_argument("--out", default="reports", help="folder of the reports (default: ./reports)")
    p.add_argument("--robust-size", type=_positive_int, default=500,
                   help="test images used for the corruption and FGSM evaluation (default: 500)")
    p.add_argument("--tracking-uri", default=None, help="MLflow store (default: the search's)")
    p.add_argument("--system-metrics", action="store_true",
                   help="log MLflow's system metrics of this machine to the search's run while the report runs")
    p.add_argument("--cpus-per-trial", type=_share, default=None)
    p.add_argument("--gpus-per-trial", type=_share, default=None)
    p.add_argument("--address", default=None, help="Ray cluster address (default: RAY_ADDRESS, else a local Ray)")
    _compute_arguments(p, default=None, compile=False)
    _compare_argument(p)
    p.set_defaults(func=commands.cmd_report)

    p = sub.add_parser("generate", help="train (or reuse) a class-conditional generator; write a sample grid",
                       description="Train a small class-conditional generator on the training split of DATASET "
                                   "(or reuse the cached one) and write a grid of samples, one row per class.")
    p.add_argument("dataset", nargs="?", default=DEFAULT_DATASET, help=f"dataset (default: {DEFAULT_DATASET})")
    p.add_argument("--model", default="vae", help="vae or dcgan (default: vae)")
    p.add_argument("--epochs", type=_positive_int, default=20, help="training epochs (default: 20)")
    p.add_argument("--train-size", type=_positive_int, default=None, help="use only N training images")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--per-class", type=_positive_int, default=8, help="samples per class in the grid (default: 8)")
    p.add_argument("--out", type=Path, default=None, help="grid PNG (default: DATASET-MODEL-samples.png)")
    p.set_defaults(func=commands.cmd_generate)

    p = sub.add_parser("ablate-synthetic", help="train one policy at several synthetic ratios over seeds; compare",
                       description="Train the same model and policy with a share of every batch generated by a "
                                   "class-conditional generator, at each ratio and seed; compare with ratio 0 on "
                                   "the test split and write ablation.md, ablation.csv and plots.")
    p.add_argument("dataset", nargs="?", default=DEFAULT_DATASET, help=f"dataset (default: {DEFAULT_DATASET})")
    p.add_argument("--ratios", type=_ratios, default=[0.0, 0.1, 0.2, 0.3, 0.5],
                   help="comma-separated ratios in [0, 1) (default: 0,0.1,0.2,0.3,0.5)")
    p.add_argument("--generator", default="vae", help="vae or dcgan (default: vae)")
    p.add_argument("--policy", default="none", help="augmentation policy of every run (default: none)")
    p.add_argument("--seeds", type=_positive_int, default=3, help="seeds per ratio (default: 3)")
    p.add_argument("--model", default="convnet")
    p.add_argument("--epochs", type=_positive_int, default=30)
    p.add_argument("--train-size", type=_positive_int, default=4000, help="training images (default: 4000)")
    p.add_argument("--generator-epochs", type=_positive_int, default=20)
    p.add_argument("--out", default="reports", help="folder of the reports (default: ./reports)")
    p.add_argument("--cpus-per-trial", type=_share, default=None)
    p.add_argument("--gpus-per-trial", type=_share, default=None)
    p.add_argument("--address", default=None, help="Ray cluster address (default: RAY_ADDRESS, else a local Ray)")
    p.set_defaults(func=commands.cmd_ablate_synthetic)

    p = sub.add_parser("ui", help="start the MLflow UI on 127.0.0.1 on the store a search used")
    p.add_argument("search", nargs="?", default=None,
                   help="a search folder or the MLflow run id of a search (default: the latest search in --storage)")
    p.add_argument("--storage", default="autoaug-runs", help="folder of the searches (default: ./autoaug-runs)")
    p.add_argument("--tracking-uri", default=None, help="MLflow store (default: the search's)")
    p.add_argument("--port", type=int, default=5000)
    p.set_defaults(func=commands.cmd_ui)

    p = sub.add_parser("export", help="print Python that applies a policy in another pipeline",
                       description="Print a Python snippet that builds a torchvision.transforms.v2 pipeline applying "
                                   "POLICY to one image at a time (for Dataset / DataLoader pipelines).")
    p.add_argument("policy", help="a policy JSON file or a preset name")
    p.add_argument("--to", default="torchvision", help="torchvision (default: torchvision)")
    p.set_defaults(func=commands.cmd_export)

    p = sub.add_parser("ops", help="list the augmentation ops and their ranges")
    p.set_defaults(func=commands.cmd_ops)
    p = sub.add_parser("datasets", help="list the dataset sources and which load offline")
    p.set_defaults(func=commands.cmd_datasets)
    return parser


def _version() -> str:
    from importlib.metadata import version

    return version("autoaug")


def _interrupt_on_sigterm() -> None:
    """Let ``kill PID`` unwind like Ctrl-C, so Ray is stopped and MLflow runs are closed."""
    import signal

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from autoaug.errors import AutoaugError

    _interrupt_on_sigterm()
    try:
        return int(args.func(args))
    except AutoaugError as e:
        print(f"autoaug: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("autoaug: interrupted", file=sys.stderr)
        return 130
    except OSError as e:  # a folder that cannot be written, a full disk: the cause and the path, not a traceback
        print(f"autoaug: error: {e}", file=sys.stderr)
        return 1
