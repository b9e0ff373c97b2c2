"""A user's own data, end to end: ``autoaug search`` (trials, selection, report) on an ``imagefolder:`` and on a
``parquet:`` dataset, through the command line. Folder and experiment names come from the dataset spec, which
holds ':' and '/': they must be made safe everywhere (slow)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

CLASSES = ("cat", "dog", "fox")


def _images(rng: np.random.Generator, label: int, n: int) -> list[Image.Image]:
    """RGB 16x16 images whose class shows in their mean colour, with noise: learnable, not trivial."""
    base = np.zeros((16, 16, 3))
    base[..., label] = 140
    return [Image.fromarray(np.clip(base + rng.normal(0, 60, base.shape), 0, 255).astype(np.uint8))
            for _ in range(n)]


def _imagefolder(root: Path) -> str:
    rng = np.random.default_rng(0)
    for split, n in (("train", 30), ("test", 8)):
        for label, name in enumerate(CLASSES):
            (root / split / name).mkdir(parents=True)
            for i, image in enumerate(_images(rng, label, n)):
                image.save(root / split / name / f"{i}.png")
    return f"imagefolder:{root}"


def _parquet(root: Path) -> str:
    import datasets as hf

    rng = np.random.default_rng(1)
    features = hf.Features({"img": hf.Image(), "label": hf.ClassLabel(names=list(CLASSES))})
    (root / "plain_text").mkdir(parents=True)
    for split, n in (("train", 30), ("test", 8)):
        labels = [label for label in range(len(CLASSES)) for _ in range(n)]
        images = [image for label in range(len(CLASSES)) for image in _images(rng, label, n)]
        hf.Dataset.from_dict({"img": images, "label": labels}, features=features).to_parquet(
            str(root / "plain_text" / f"{split}-00000-of-00001.parquet"))
    return f"parquet:{root}/"


@pytest.mark.slow
@pytest.mark.parametrize(("make", "safe"), [(_imagefolder, "imagefolder-my_pets"), (_parquet, "parquet-my_pets")])
def test_search_and_report_run_end_to_end_on_a_users_data(tmp_path: Path, make, safe: str) -> None:
    from mlflow.tracking import MlflowClient

    spec = make(tmp_path / "data:1" / "my pets")  # ':' and ' ' in the path as well
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cmd = [sys.executable, "-m", "autoaug", "search", spec, "--budget", "tiny", "--trials", "3", "--epochs", "2",
           "--train-size", "60", "--select", "1", "--report-seeds", "2", "--compare", "cropflip",
           "--storage", str(tmp_path / "runs"), "--reports", str(tmp_path / "reports"), "--tracking-uri", uri]
    run = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    (search,) = (tmp_path / "runs").iterdir()
    (report,) = (tmp_path / "reports").glob("[!.]*")
    assert re.fullmatch(rf"{safe}-\d{{8}}-\d{{6}}", search.name) and re.fullmatch(rf"{safe}-\d{{8}}-\d{{6}}",
                                                                                   report.name)
    assert json.loads((search / "search.json").read_text())["dataset"] == spec
    assert json.loads((search / "search.json").read_text())["report"] == str(report)
    md = (report / "report.md").read_text()
    assert "| searched |" in md and "| none |" in md and "| cropflip |" in md
    assert "3x16x16, 3 classes" in md
    client = MlflowClient(uri)
    assert client.get_experiment_by_name(safe) is not None
    parent = json.loads((search / "mlflow.json").read_text())["parent_run_id"]
    assert client.get_run(parent).info.status == "FINISHED"


@pytest.mark.slow
def test_a_folder_of_mixed_size_photos_runs_a_search_and_its_report(tmp_path: Path) -> None:
    """JPEG photos of 60 to 400 px in several aspect ratios: ``--image-size 64`` makes them 64x64 once, the tiny
    budget's training size becomes what there is, and the search and its report run end to end at that size."""
    from conftest import make_photo_folder

    spec = f"imagefolder:{make_photo_folder(tmp_path / 'photos', n_train=12, n_test=4)}"
    cmd = [sys.executable, "-m", "autoaug", "search", spec, "--image-size", "64", "--budget", "tiny",
           "--report-seeds", "2", "--compare", "cropflip", "--storage", str(tmp_path / "runs"),
           "--reports", str(tmp_path / "reports"), "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"]
    run = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "budget 'tiny' trains on up to 2000 images; " in run.stdout and "3x64x64, 3 classes" in run.stdout
    (search,) = (tmp_path / "runs").iterdir()
    record = json.loads((search / "search.json").read_text())
    assert record["image_size"] == 64 and record["train_size"] is None
    (report,) = (tmp_path / "reports").glob("[!.]*")
    md = (report / "report.md").read_text()
    assert "3x64x64, 3 classes" in md and "| searched |" in md and "| cropflip |" in md


def test_a_corrupt_image_inside_a_parquet_set_is_named_and_nothing_is_written(tmp_path: Path) -> None:
    """A parquet set with one undecodable image among good ones: one line naming it, exit 2, no search folder, no
    cache entry."""
    import datasets as hf

    good = Image.new("RGB", (32, 32), (200, 10, 10))
    features = hf.Features({"img": hf.Image(), "label": hf.ClassLabel(names=["a", "b"])})
    root = tmp_path / "broken"
    root.mkdir()
    for split in ("train", "test"):
        images = [good] * 6
        if split == "train":
            images[3] = {"bytes": b"\x89PNG not an image", "path": None}
        hf.Dataset.from_dict({"img": images, "label": [i % 2 for i in range(6)]}, features=features).to_parquet(
            str(root / f"{split}-00000-of-00001.parquet"))
    cache, work = tmp_path / "cache", tmp_path / "work"
    work.mkdir()
    run = subprocess.run([sys.executable, "-m", "autoaug", "search", f"parquet:{root}", "--budget", "tiny",
                          "--no-report", "--storage", str(work / "runs")], capture_output=True, text=True, cwd=work,
                         env={**os.environ, "AUTOAUG_CACHE": str(cache)}, timeout=300)
    assert run.returncode == 2, run.stdout + run.stderr
    assert run.stderr.strip().splitlines() == [run.stderr.strip()] and "cannot read image train[3]" in run.stderr
    assert not (work / "runs").exists() and not any(cache.rglob("*.pt"))
