from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "autoaug", *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=600)


def test_help_does_not_import_heavy_dependencies() -> None:
    code = ("import sys, autoaug.cli; autoaug.cli.build_parser(); "
            "print(sorted({'torch', 'ray', 'mlflow'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_ops_and_datasets_listings() -> None:
    ops = run_cli("ops")
    assert ops.returncode == 0 and "rotate" in ops.stdout and "±0..±135 deg" in ops.stdout
    ds = run_cli("datasets")
    assert ds.returncode == 0 and "fashion_mnist_small" in ds.stdout and "cifar10" in ds.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "cifar11"], "unknown dataset 'cifar11'"),
        (["train", "--policy", "fancy"], "unknown policy 'fancy'"),
        (["train", "--policy", "missing.json"], "policy file 'missing.json' does not exist"),
        (["train", "--model", "vgg"], "unknown model 'vgg'"),
        (["train", "--epochs", "0"], "'0' must be at least 1"),
        (["train", "imagefolder:/nonexistent/pets"], "image folder '/nonexistent/pets' does not exist"),
        (["train", "--train-size", "999999"], "train size 999999 is out of range"),
        (["search", "--space", "fancy"], "unknown search space 'fancy'"),
        (["search", "--budget", "huge"], "unknown budget 'huge'; choose from: tiny, demo, small, medium, large"),
        (["search", "--resume"], "no unfinished search of 'fashion_mnist_small' to resume"),
        (["report", "nope"], "search 'nope' is neither a search folder nor an MLflow run id"),
        (["report", "nope", "--seeds", "0"], "'0' must be at least 1"),
        (["train", "--policy", "/"], "policy file '/' is a folder; give a policy JSON file"),
        (["search", "--storage", "/etc/hostname"], "storage '/etc/hostname' is a file; give a folder"),
        (["train", "--precision", "fp64"], "unknown precision 'fp64'; choose from: auto, fp32, bf16, fp16"),
        (["train", "--precision", "fp16"], "precision 'fp16' needs a CUDA device"),
        (["search", "--precision", "half"], "unknown precision 'half'"),
        (["export", "none", "--to", "onnx"], "unknown export target 'onnx'; choose from: torchvision"),
        (["ui", "nope"], "'nope' is neither a search folder nor the MLflow run of a search"),
        # a search that cannot start leaves no folder and no MLflow run behind
        (["search", "imagefolder:/nonexistent/pets"], "image folder '/nonexistent/pets' does not exist"),
        (["search", "--train-size", "999999"], "train size 999999 is out of range"),
        (["search", "--cpus-per-trial", "64"], "64 cpus per trial is more than the"),
        (["search", "--cpus-per-trial", "0"], "0 cpus per trial: give a number above 0"),
        (["search", "--gpus-per-trial", "-1"], "argument --gpus-per-trial: '-1' must be 0 or more"),
        (["report", "nope", "--cpus-per-trial", "x"], "argument --cpus-per-trial: 'x' is not a number"),
        (["ablate-synthetic", "--gpus-per-trial", "-0.5"], "argument --gpus-per-trial: '-0.5' must be 0 or more"),
        (["search", "--select", "-1"], "argument --select: '-1' must be at least 0"),
        (["search", "--scheduler", "bohb"], "unknown scheduler 'bohb'; choose from: asha, fifo, pbt"),
        (["search", "--scheduler", "pbt", "--space", "default"], "give a per-op space, e.g. --space per_op"),
        (["search", "--trials", "0"], "argument --trials: '0' must be at least 1"),
        (["search", "--model", "vgg"], "unknown model 'vgg'"),
        (["search", "--compare", "fancy"], "unknown policy 'fancy'"),
        (["train", "--batch-size", "0"], "argument --batch-size: '0' must be at least 1"),
        (["train", "--optimizer", "rmsprop"], "unknown optimizer 'rmsprop'; choose from: adam, adamw, sgd"),
        (["train", "--lr-schedule", "step"], "unknown lr schedule 'step'; choose from: constant, cosine"),
        (["train", "--val-size", "2.5"], "val size 2.5 is out of range"),
        (["train", "--val-size", "abc"], "argument --val-size: 'abc' is not a count or a fraction"),
        (["train", "--device", "tpu"], "unknown device 'tpu'"),
        (["train", "--lr", "-1"], "lr -1.0 must be a positive number"),
        (["train", "--weight-decay", "-0.1"], "weight_decay -0.1 must be >= 0"),
        (["train", "--seeds", "0"], "argument --seeds: '0' must be at least 1"),
        (["train", "--epochs", "x"], "argument --epochs: 'x' is not an integer"),
        (["report", "nope", "--robust-size", "0"], "argument --robust-size: '0' must be at least 1"),
        (["generate", "--model", "gan"], "unknown generator 'gan'; choose from: vae, dcgan"),
        (["generate", "--per-class", "0"], "argument --per-class: '0' must be at least 1"),
        (["ablate-synthetic", "--ratios", "1.5"], "synthetic ratio 1.5 is outside [0, 1)"),
        (["ablate-synthetic", "--generator", "gan"], "unknown generator 'gan'"),
        (["ablate-synthetic", "--policy", "fancy"], "unknown policy 'fancy'"),
        (["ui", "--port", "abc"], "argument --port: invalid int value: 'abc'"),
        (["export", "missing.json"], "policy file 'missing.json' does not exist"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], message: str, tmp_path: Path) -> None:
    proc = run_cli(*args, cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_bad_policy_file_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "p.json"
    bad.write_text(json.dumps({"ops": {"rotate": {"magnitude": 2}}}))
    proc = run_cli("train", "--policy", str(bad))
    assert proc.returncode == 2 and "p.json" in proc.stderr and "magnitude 2 is outside [0, 1]" in proc.stderr


def test_train_smoke_writes_results(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    proc = run_cli("train", "--policy", "trivialaugment", "--epochs", "1", "--train-size", "1000",
                   "--seeds", "2", "--output", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "epoch   1/1" in proc.stdout and "test acc over 2 seeds" in proc.stdout
    result = json.loads(out.read_text())
    assert [r["seed"] for r in result["runs"]] == [0, 1] and result["policy"]["name"] == "trivialaugment"
    assert all(0.1 < r["test_acc"] <= 1.0 for r in result["runs"])


def test_the_api_is_at_the_top_and_loads_lazily() -> None:
    code = ("import sys, autoaug; light = sorted({'torch', 'ray', 'mlflow'} & set(sys.modules)); "
            "from autoaug import tune_policy, make_report, SearchResult, Augmenter, Policy; "
            "import autoaug.search, autoaug.report; "
            "print(light, tune_policy is autoaug.search.tune_policy, make_report is autoaug.report.make_report)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[] True True"
