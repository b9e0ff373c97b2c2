from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_photo_folder
from PIL import Image

from autoaug.data.cache import cache_dir
from autoaug.data.datasets import DEFAULT_DATASET, load_dataset, load_raw, stratified_split
from autoaug.data.sources import DEBIAN_FASHION_DIR
from autoaug.errors import AutoaugError


def _image(rng: np.random.Generator, size: tuple[int, int] = (8, 8), mode: str = "RGB") -> Image.Image:
    shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
    return Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode)


def make_imagefolder(root: Path, classes: tuple[str, ...] = ("cat", "dog"), n_train: int = 6, n_test: int = 2) -> Path:
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("test", n_test)):
        for c in classes:
            d = root / split / c
            d.mkdir(parents=True)
            for i in range(n):
                _image(rng).save(d / f"{i}.{'png' if i % 2 else 'jpg'}")
    return root


def test_embedded_cifar10_subset() -> None:
    d = load_dataset("cifar10_small", train_size=1000, seed=0)
    assert d.image_shape == (3, 32, 32) and d.classes[0] == "airplane" and d.classes[-1] == "truck"
    assert (len(d.train_y), len(d.val_y), len(d.test_y)) == (1000, 200, 1000)
    assert torch.bincount(d.train_y).tolist() == [100] * 10 and torch.bincount(d.test_y).tolist() == [100] * 10
    assert 0.3 < d.train_x.float().mean().item() / 255 < 0.7 and d.train_x.float().std().item() > 40  # photos


def test_stratified_split_keeps_class_shares_and_is_seeded() -> None:
    y = torch.tensor([0] * 600 + [1] * 300 + [2] * 100)
    taken, rest = stratified_split(y, 100, torch.Generator().manual_seed(0))
    assert torch.bincount(y[taken]).tolist() == [60, 30, 10]
    assert len(set(taken.tolist()) | set(rest.tolist())) == 1000 and len(rest) == 900
    again, _ = stratified_split(y, 100, torch.Generator().manual_seed(0))
    other, _ = stratified_split(y, 100, torch.Generator().manual_seed(1))
    assert torch.equal(taken, again) and not torch.equal(taken, other)


def test_embedded_default_dataset() -> None:
    d = load_dataset(DEFAULT_DATASET, val_size=0.1, seed=0)
    assert d.train_x.dtype == torch.uint8 and d.image_shape == (1, 28, 28) and d.num_classes == 10
    assert (len(d.train_y), len(d.val_y), len(d.test_y)) == (9000, 1000, 2000)
    assert torch.bincount(d.val_y).tolist() == [100] * 10  # stratified
    reduced = load_dataset(DEFAULT_DATASET, train_size=2000, seed=0)
    assert len(reduced.train_y) == 2000 and torch.bincount(reduced.train_y).tolist() == [200] * 10
    assert torch.equal(reduced.val_y, d.val_y)  # the val split does not depend on the train size


def test_imagefolder_loads_and_is_cached(tmp_path: Path) -> None:
    root = make_imagefolder(tmp_path / "pets")
    d = load_dataset(f"imagefolder:{root}", val_size=2, seed=0)
    assert d.classes == ("cat", "dog") and d.image_shape == (3, 8, 8)
    assert len(d.train_y) == 10 and len(d.val_y) == 2 and len(d.test_y) == 4
    assert torch.bincount(d.test_y).tolist() == [2, 2]
    png = np.array(Image.open(root / "test" / "dog" / "1.png"))
    assert torch.equal(d.test_x[3].permute(1, 2, 0), torch.from_numpy(png))
    cached = list(cache_dir().glob("imagefolder-*.pt"))
    assert len(cached) >= 1
    (root / "train" / "cat" / "0.jpg").unlink()  # a change in the folder makes a new cache entry
    assert len(load_raw(f"imagefolder:{root}").train_y) == 11


def test_corrupt_cache_is_rebuilt(tmp_path: Path) -> None:
    root = make_imagefolder(tmp_path / "pets")
    load_raw(f"imagefolder:{root}")
    newest = max(cache_dir().glob("imagefolder-*.pt"), key=os.path.getmtime)
    newest.write_bytes(b"garbage")
    assert len(load_raw(f"imagefolder:{root}").train_y) == 12


def test_gray_and_rgb_images_are_unified(tmp_path: Path) -> None:
    root = make_imagefolder(tmp_path / "pets")
    _image(np.random.default_rng(1), mode="L").save(root / "train" / "cat" / "gray.png")
    assert load_raw(f"imagefolder:{root}").train_x.shape[1:] == (3, 8, 8)


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        ("missing", "does not exist"),
        ("no_test", "has no test/ folder"),
        ("empty_class", "holds no images"),
        ("corrupt", "cannot read image .*broken.png"),
        ("single_class", "single class 'cat'"),
    ],
)
def test_bad_image_folders_give_one_clear_error(tmp_path: Path, breakage: str, message: str) -> None:
    root = tmp_path / "pets"
    if breakage == "single_class":
        make_imagefolder(root, classes=("cat",))
    elif breakage != "missing":
        make_imagefolder(root)
    if breakage == "no_test":
        for f in (root / "test").rglob("*.*"):
            f.unlink()
        for d in sorted((root / "test").rglob("*"), reverse=True):
            d.rmdir()
        (root / "test").rmdir()
    elif breakage == "empty_class":
        (root / "train" / "bird").mkdir()
    elif breakage == "corrupt":
        (root / "train" / "cat" / "broken.png").write_bytes(b"\x89PNG not really")
    before = set(cache_dir().glob("*")) if cache_dir().exists() else set()
    with pytest.raises(AutoaugError, match=message):
        load_dataset(f"imagefolder:{root}")
    after = set(cache_dir().glob("*")) if cache_dir().exists() else set()
    assert after == before  # nothing half-written


def test_a_folder_of_mixed_photo_sizes_is_resized_once_per_size(tmp_path: Path) -> None:
    from autoaug.data.cache import tree_fingerprint

    root = make_photo_folder(tmp_path / "photos")
    spec = f"imagefolder:{root}"
    d = load_dataset(spec, val_size=3, seed=0)
    assert d.image_shape == (3, 64, 64)
    assert d.summary().endswith("(images of mixed sizes (60x45 to 400x300) resized to 64x64 (shorter side, then "
                                "centre crop); choose the size with --image-size)")
    small = load_dataset(spec, val_size=3, seed=0, image_size=32)
    assert small.image_shape == (3, 32, 32) and "mixed sizes" not in small.summary()
    middle = small.train_x.float().mean(dim=(0, 2, 3))  # the centre crop keeps the middle (green) of wide images
    assert middle[1] > middle[0] and middle[1] > middle[2]
    entries = sorted(p.name.rsplit("-", 1)[1] for p in cache_dir().glob(f"imagefolder-{tree_fingerprint(root)}-*"))
    assert entries == ["32.pt", "own.pt"]  # decoded once per size
    assert load_dataset("cifar10_small", train_size=100, image_size=48).image_shape == (3, 48, 48)
    assert "resized from 32x32 to 48x48" in load_dataset("cifar10_small", train_size=100, image_size=48).summary()


@pytest.mark.parametrize("size", [0, 7, 2000, True, 32.0])
def test_an_image_size_out_of_range_is_named(size: object) -> None:
    with pytest.raises(AutoaugError, match=rf"image size {size!r} is out of range; allowed: 8 to 1024"):
        load_dataset("cifar10_small", image_size=size)  # type: ignore[arg-type]


def test_a_corrupt_photo_among_good_ones_is_named_at_any_size(tmp_path: Path) -> None:
    root = make_photo_folder(tmp_path / "photos")
    (root / "train" / "dog" / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    for size in (None, 32):
        with pytest.raises(AutoaugError, match=r"cannot read image .*broken\.jpg"):
            load_dataset(f"imagefolder:{root}", image_size=size)


def test_parquet_in_the_hub_cifar10_schema(tmp_path: Path) -> None:
    import datasets as hf

    rng = np.random.default_rng(0)
    features = hf.Features({"img": hf.Image(), "label": hf.ClassLabel(names=["airplane", "automobile", "bird"])})
    root = tmp_path / "cifar" / "plain_text"
    root.mkdir(parents=True)
    for split, n in (("train", 12), ("test", 6)):
        images = [_image(rng, (32, 32)) for _ in range(n)]
        ds = hf.Dataset.from_dict({"img": images, "label": [i % 3 for i in range(n)]}, features=features)
        ds.to_parquet(str(root / f"{split}-00000-of-00001.parquet"))
    d = load_dataset(f"parquet:{tmp_path / 'cifar'}", val_size=3)
    assert d.classes == ("airplane", "automobile", "bird") and d.image_shape == (3, 32, 32)
    assert len(d.train_y) == 9 and len(d.test_y) == 6
    assert d.test_y.tolist() == [0, 1, 2, 0, 1, 2]


def test_unknown_dataset_and_bad_sizes() -> None:
    with pytest.raises(AutoaugError, match=r"unknown dataset 'cifar11'; choose from: .*cifar10"):
        load_raw("cifar11")
    with pytest.raises(AutoaugError, match=r"train size 99999 is out of range"):
        load_dataset(DEFAULT_DATASET, train_size=99999)
    with pytest.raises(AutoaugError, match=r"val size 1\.5 is out of range"):
        load_dataset(DEFAULT_DATASET, val_size=1.5)


def test_hub_dataset_offline_fails_fast_naming_alternatives() -> None:
    """The hub (here a closed port on this machine, whatever the machine's network) does not answer: the load
    fails at once, naming what loads offline."""
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    code = "from autoaug.data.datasets import load_raw\nload_raw('cifar10')"
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "0", "HF_ENDPOINT": f"http://127.0.0.1:{closed}"})
    assert time.perf_counter() - t0 < 30
    assert "cannot load 'cifar10'" in proc.stderr and "fashion_mnist_small" in proc.stderr
    assert "imagefolder:PATH" in proc.stderr


@pytest.mark.skipif(not DEBIAN_FASHION_DIR.exists(), reason="Debian's dataset-fashion-mnist is not installed")
def test_real_fashion_mnist_from_debian() -> None:
    d = load_dataset("fashion_mnist", val_size=5000, seed=0)
    assert (len(d.train_y), len(d.val_y), len(d.test_y)) == (55000, 5000, 10000)
    assert d.image_shape == (1, 28, 28) and d.classes[0] == "T-shirt/top"
    assert torch.bincount(d.test_y).tolist() == [1000] * 10
    assert 60 < d.train_x.float().mean().item() < 90  # real clothing images, not noise


@pytest.mark.parametrize(("spec", "name"), [
    ("fashion_mnist_small", "fashion_mnist_small"), ("imagefolder:/data/pets", "imagefolder-pets"),
    ("parquet:../shared/data/cifar10-train-resplit/", "parquet-cifar10-train-resplit"),
    ("imagefolder:~/my data:v2", "imagefolder-my_data_v2"), ("parquet:/", "parquet-root"),
])
def test_folder_names_of_dataset_specs_are_safe(spec: str, name: str) -> None:
    from autoaug.data.sources import folder_name

    assert folder_name(spec) == name and "/" not in name and ":" not in name
