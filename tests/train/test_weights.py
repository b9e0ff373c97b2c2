"""Pretrained timm models: a local state dict (saved here from a tiny timm model) or timm's hub weights; the
classifier is new for the data's classes, the fine-tuning recipe is the default, and bad weights get one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from autoaug.errors import AutoaugError
from autoaug.train.models import build_model
from autoaug.train.weights import check_weights


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The weights of timm's tiny ``test_resnet`` (1,000 classes), as a user's state dict file."""
    import timm

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "test_resnet.pth"
    torch.save(timm.create_model("test_resnet").state_dict(), path)
    return path


def test_a_state_dict_initializes_everything_but_a_new_classifier(saved: Path) -> None:
    state = torch.load(saved, weights_only=True)
    model = build_model("timm:test_resnet", 3, 10, 32, weights=str(saved))
    own = model.state_dict()
    assert own["fc.weight"].shape == (10, state["fc.weight"].shape[1])  # the classifier fits the data
    assert all(torch.equal(own[k], v) for k, v in state.items() if not k.startswith("fc."))  # stem kept too
    gray = build_model("timm:test_resnet", 1, 3, 28, weights=str(saved))
    assert gray.state_dict()["conv1.0.weight"].shape[1] == 1  # timm adapts the first conv to one channel
    checkpoint = saved.parent / "checkpoint.pt"
    torch.save({"epoch": 3, "state_dict": state}, checkpoint)
    check_weights("timm:test_resnet", checkpoint)  # a training checkpoint's state dict is found


@pytest.mark.parametrize(("make", "model", "message"), [
    (lambda p: p.write_text("not weights"), "timm:test_resnet", "is not a PyTorch state dict"),
    (lambda p: torch.save([1, 2], p), "timm:test_resnet", "holds no state dict"),
    (lambda p: None, "timm:test_resnet", "does not exist"),
    ("vit", "timm:test_resnet", "does not fit timm:test_resnet: "),
    ("vit", "smallcnn", "pretrained weights need a timm model (timm:NAME); 'smallcnn' is autoaug's own"),
])
def test_bad_weights_are_named(tmp_path: Path, make, model: str, message: str) -> None:
    import timm

    path = tmp_path / "weights.pth"
    if make == "vit":
        torch.save(timm.create_model("test_vit").state_dict(), path)
    else:
        make(path)
    with pytest.raises(AutoaugError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_weights(model, path)


def _autoaug(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "autoaug", *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=600)


def test_train_fine_tunes_from_a_local_state_dict(saved: Path, tmp_path: Path) -> None:
    run = _autoaug("train", "cifar10_small", "--model", "timm:test_resnet", "--weights", str(saved), "--epochs", "1",
                   "--train-size", "100", "--val-size", "50", "--output", "out.json", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert f"model timm:test_resnet, from {saved} weights; 1 epochs, adamw lr 0.0001 weight decay 0.05, warmup 0.1 " \
           "of the steps" in run.stdout
    assert "timm:test_resnet was pretrained on 160x160 images: the data is resized to that" in run.stdout
    assert "3x160x160" in run.stdout.splitlines()[1]  # the data's summary line
    empty = tmp_path / "empty"
    empty.mkdir()
    for args, message in [
        (["--weights", str(tmp_path / "nope.pth")], "weights file '" + str(tmp_path / "nope.pth") + "' does not exist"),
        (["--pretrained"], "no pretrained weights for timm:test_resnet: not in the Hugging Face cache"),
    ]:
        bad = _autoaug("train", "cifar10_small", "--model", "timm:test_resnet", *args, "--epochs", "1",
                       "--train-size", "100", "--output", "out.json", cwd=empty)
        assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and message in bad.stderr, bad.stderr
    assert list(empty.iterdir()) == []  # the failures wrote nothing


@pytest.mark.slow  # a minute: the search and its report train at the model's 160 px
def test_a_search_and_its_report_fine_tune_a_pretrained_model(saved: Path, tmp_path: Path) -> None:
    from autoaug import make_report, tune_policy

    result = tune_policy("cifar10_small", model="timm:test_resnet", weights=str(saved), budget="tiny", trials=2,
                         epochs=1, train_size=100, select=0, storage=tmp_path / "runs", num_cpus=2, cpus_per_trial=1,
                         tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", echo=lambda line: None)
    r = result.record
    assert (r.weights, r.optimizer, r.lr, r.warmup, r.image_size) == (str(saved), "adamw", 1e-4, 0.1, 160)
    report = make_report(result.output_dir, seeds=1, compare=["none"], out=tmp_path / "reports", num_cpus=2,
                         cpus_per_trial=1, echo=lambda line: None)
    text = (report.folder / "report.md").read_text()
    assert "adamw with learning rate 0.0001 (cosine schedule after a linear warmup over 10% of the steps)" in text
    assert f"fine-tuned from the weights in `{saved}`" in text
