"""The named image-classification sources and how each is decoded into uint8 tensors ``[N, C, H, W]``.

Sources: Hugging Face hub sets (``cifar10``, ``cifar100``, ``mnist``, ``fashion_mnist``, ``svhn``), the embedded
``fashion_mnist_small`` and ``cifar10_small`` (ship inside the package, beside this file), ``imagefolder:PATH`` and
``parquet:PATH``.
"""

from __future__ import annotations

import gzip
import io
import os
import re
import socket
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from autoaug.data.resize import DEFAULT_IMAGE_SIZE, fit_pil, mixed_sizes_note
from autoaug.errors import AutoaugError

FASHION_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
DEBIAN_FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
EMBEDDED_FILE = Path(__file__).parent / "fashion_mnist_small.npz"
CIFAR_SMALL_FILE = Path(__file__).parent / "cifar10_small.npz"  # scripts/make_cifar10_small.py
CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
HUB_HOST = ("huggingface.co", 443)


@dataclass(frozen=True)
class RawData:
    """A source decoded once: train and test images ``uint8 [N, C, H, W]`` and labels ``int64 [N]``."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: tuple[str, ...]
    note: str = ""  # how the images were made to fit (e.g. resized from mixed sizes), said with the data


@dataclass(frozen=True)
class HubSource:
    """A Hugging Face hub dataset: id, optional config, and the image/label column names."""

    hub_id: str
    image_column: str
    label_column: str
    config: str | None = None


@dataclass(frozen=True)
class SourceSpec:
    name: str
    description: str
    hub: HubSource | None = None
    local: Callable[[], RawData] | None = None  # offline loader, used when ``available_offline()``
    available_offline: Callable[[], bool] = lambda: False


def _load_npz(path: Path, classes: tuple[str, ...]) -> RawData:
    """An embedded subset: ``uint8`` images ``[N, H, W]`` (gray) or ``[N, C, H, W]`` and labels."""
    with np.load(path) as z:
        images = {k: torch.from_numpy(z[k]) for k in ("train_x", "test_x")}
        images = {k: x.unsqueeze(1) if x.ndim == 3 else x for k, x in images.items()}
        return RawData(train_x=images["train_x"], train_y=torch.from_numpy(z["train_y"]).long(),
                       test_x=images["test_x"], test_y=torch.from_numpy(z["test_y"]).long(), classes=classes)


def read_idx(path: Path) -> np.ndarray:
    """Read an idx(.gz) file (the original MNIST / Fashion-MNIST format) as a uint8 array."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08:
        raise AutoaugError(f"{path} is not a uint8 idx file (header {data[:4].hex()})")
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _load_debian_fashion() -> RawData:
    d = DEBIAN_FASHION_DIR

    def pair(prefix: str) -> tuple[torch.Tensor, torch.Tensor]:
        x = read_idx(d / f"{prefix}-images-idx3-ubyte.gz")
        y = read_idx(d / f"{prefix}-labels-idx1-ubyte.gz")
        return torch.from_numpy(x.copy()).unsqueeze(1), torch.from_numpy(y.astype(np.int64))

    (train_x, train_y), (test_x, test_y) = pair("train"), pair("t10k")
    return RawData(train_x, train_y, test_x, test_y, FASHION_CLASSES)


SOURCES: dict[str, SourceSpec] = {
    s.name: s
    for s in (
        SourceSpec("fashion_mnist_small", "embedded class-balanced subset of Fashion-MNIST (10k/2k, 28x28 gray)",
                   local=lambda: _load_npz(EMBEDDED_FILE, FASHION_CLASSES), available_offline=EMBEDDED_FILE.exists),
        SourceSpec("cifar10_small", "embedded class-balanced subset of CIFAR-10's training split (2k/1k, 32x32 RGB)",
                   local=lambda: _load_npz(CIFAR_SMALL_FILE, CIFAR_CLASSES), available_offline=CIFAR_SMALL_FILE.exists),
        SourceSpec("fashion_mnist", "Fashion-MNIST 60k/10k, 28x28 gray (Debian dataset-fashion-mnist or hub)",
                   hub=HubSource("zalando-datasets/fashion_mnist", "image", "label"),
                   local=_load_debian_fashion,
                   available_offline=lambda: (DEBIAN_FASHION_DIR / "train-images-idx3-ubyte.gz").exists()),
        SourceSpec("mnist", "MNIST 60k/10k, 28x28 gray (hub)", hub=HubSource("ylecun/mnist", "image", "label")),
        SourceSpec("cifar10", "CIFAR-10 50k/10k, 32x32 RGB (hub)", hub=HubSource("uoft-cs/cifar10", "img", "label")),
        SourceSpec("cifar100", "CIFAR-100 50k/10k, 32x32 RGB, fine labels (hub)",
                   hub=HubSource("uoft-cs/cifar100", "img", "fine_label")),
        SourceSpec("svhn", "SVHN cropped digits 73k/26k, 32x32 RGB (hub)",
                   hub=HubSource("ufldl-stanford/svhn", "image", "label", config="cropped_digits")),
    )
}
PREFIXED = {
    "imagefolder": "PATH/train/CLASS/* and PATH/test/CLASS/*, any format PIL reads",
    "parquet": "PATH/train*.parquet and PATH/test*.parquet in the hub schema (image + label columns)",
}


def folder_name(spec: str) -> str:
    """A file-name-safe form of a dataset spec for folders and experiment names: ``imagefolder:/data/pets`` ->
    ``imagefolder-pets``, ``parquet:../cifar10-train-resplit/`` -> ``parquet-cifar10-train-resplit``."""
    kind, sep, path = spec.partition(":")
    if sep:
        spec = f"{kind}-{Path(path.rstrip('/')).name or 'root'}"
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", spec).strip("._") or "dataset"


def source_names() -> list[str]:
    return [*SOURCES, *(f"{p}:PATH" for p in PREFIXED)]


# --------------------------------------------------------------------------------------------- decoding
def decode_images(items: Iterable[tuple[Any, str]], size: int | None = None) -> torch.Tensor:
    """Decode ``(bytes | path, name)`` items with PIL into ``uint8 [N, C, H, W]``.

    Gray and RGB are unified (any colour image makes the whole set RGB). With ``size`` every image is made
    ``size x size`` (:func:`autoaug.data.resize.fit_pil`); without it, a size that differs from the first image's
    raises :class:`AutoaugError` naming the file, as does a file PIL cannot read.
    """
    from PIL import Image, UnidentifiedImageError

    arrays: list[np.ndarray] = []
    first: tuple[str, tuple[int, int]] | None = None
    for src, name in items:
        try:
            with Image.open(io.BytesIO(src) if isinstance(src, bytes | bytearray) else src) as im:
                im = im.convert("L" if im.mode in ("1", "L", "I", "I;16", "F") else "RGB")
                arr = np.asarray(fit_pil(im, size) if size else im)
        except UnidentifiedImageError:
            raise AutoaugError(f"cannot read image {name}: not an image file PIL can decode") from None
        except (OSError, SyntaxError, ValueError) as e:
            raise AutoaugError(f"cannot read image {name}: {e}") from None
        if first is None:
            first = (name, arr.shape[:2])
        elif arr.shape[:2] != first[1]:
            (h0, w0), (h, w) = first[1], arr.shape[:2]
            raise AutoaugError(f"mixed image sizes: {name} is {w}x{h} but {first[0]} is {w0}x{h0}; "
                               "give --image-size N to make them N x N")
        arrays.append(arr)
    if not arrays:
        raise AutoaugError("no images to decode")
    if any(a.ndim == 3 for a in arrays):
        arrays = [a if a.ndim == 3 else np.repeat(a[:, :, None], 3, axis=2) for a in arrays]
        return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    return torch.from_numpy(np.stack(arrays)).unsqueeze(1)


def _image_and_label_columns(features: Any, image_column: str | None, label_column: str | None) -> tuple[str, str]:
    import datasets as hf

    img = image_column or next((k for k, f in features.items() if isinstance(f, hf.Image)), None)
    lab = label_column or next((k for k, f in features.items() if isinstance(f, hf.ClassLabel)), None)
    lab = lab or next((k for k in ("label", "labels", "fine_label") if k in features), None)
    if img is None or img not in features or lab is None or lab not in features:
        raise AutoaugError(f"cannot find an image and a label column among {sorted(features)}; "
                           "expected an Image column and a ClassLabel (or 'label') column")
    return img, lab


def from_hf(dataset_dict: Any, image_column: str | None = None, label_column: str | None = None,
            size: int | None = None) -> RawData:
    """Convert a ``datasets.DatasetDict`` with ``train`` and ``test`` splits into :class:`RawData` (images made
    ``size x size`` where given)."""
    import datasets as hf

    missing = {"train", "test"} - set(dataset_dict)
    if missing:
        raise AutoaugError(f"dataset has splits {sorted(dataset_dict)}; it needs 'train' and 'test'")
    features = dataset_dict["train"].features
    img, lab = _image_and_label_columns(features, image_column, label_column)
    out = []
    for split in ("train", "test"):
        ds = dataset_dict[split].cast_column(img, hf.Image(decode=False))
        items = ((r["bytes"] if r["bytes"] is not None else r["path"], f"{split}[{i}]") for i, r in enumerate(ds[img]))
        out += [decode_images(items, size), torch.tensor(ds[lab], dtype=torch.int64)]
    label_feature = features[lab]
    if isinstance(label_feature, hf.ClassLabel):
        classes = tuple(label_feature.names)
    else:
        classes = tuple(str(i) for i in range(int(max(out[1].max(), out[3].max())) + 1))
    return RawData(*out, classes=classes)


# ------------------------------------------------------------------------------------------------ loaders
def hub_address() -> tuple[str, int]:
    """The hub's host and port: ``HF_ENDPOINT``'s (a mirror, as ``huggingface_hub`` reads it), else the hub's."""
    from urllib.parse import urlsplit

    endpoint = os.environ.get("HF_ENDPOINT")
    if not endpoint:
        return HUB_HOST
    url = urlsplit(endpoint)
    return url.hostname or HUB_HOST[0], url.port or (80 if url.scheme == "http" else 443)


def _hub_reachable(timeout: float = 3.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False
    try:
        socket.create_connection(hub_address(), timeout=timeout).close()
        return True
    except OSError:
        return False


def _go_offline() -> None:
    """Make ``datasets`` use only its local cache (fails at once instead of retrying for ~20 s)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    import datasets
    import huggingface_hub

    datasets.config.HF_HUB_OFFLINE = True
    huggingface_hub.constants.HF_HUB_OFFLINE = True


def load_hub(spec: SourceSpec) -> RawData:
    assert spec.hub is not None
    if not _hub_reachable():
        _go_offline()
    import datasets

    try:
        dd = datasets.load_dataset(spec.hub.hub_id, spec.hub.config)
    except Exception as e:
        offline = [n for n, s in SOURCES.items() if s.available_offline()]
        raise AutoaugError(
            f"cannot load {spec.name!r} from the Hugging Face hub ({spec.hub.hub_id}): {type(e).__name__}; "
            f"offline alternatives: {', '.join(offline)}, imagefolder:PATH, parquet:PATH"
        ) from None
    return from_hf(dd, spec.hub.image_column, spec.hub.label_column)


def _image_files(folder: Path) -> list[Path]:
    from PIL import Image

    exts = set(Image.registered_extensions())
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in exts)


def load_imagefolder(path: Path, size: int | None = None) -> RawData:
    """``PATH/train/CLASS/*`` and ``PATH/test/CLASS/*``, made ``size x size`` where given; images of mixed sizes
    without a ``size`` become :data:`~autoaug.data.resize.DEFAULT_IMAGE_SIZE` square (and the data says so)."""
    usage = "expected PATH/train/CLASS/* and PATH/test/CLASS/*"
    if not path.is_dir():
        raise AutoaugError(f"image folder {str(path)!r} does not exist; {usage}")
    splits = {}
    for split in ("train", "test"):
        d = path / split
        if not d.is_dir():
            raise AutoaugError(f"image folder {str(path)!r} has no {split}/ folder; {usage}")
        class_dirs = sorted(p for p in d.iterdir() if p.is_dir() and not p.name.startswith("."))
        files = {c.name: _image_files(c) for c in class_dirs}
        empty = [str(d / c) for c, f in files.items() if not f]
        if not class_dirs or empty:
            where = empty[0] if empty else str(d)
            raise AutoaugError(f"image folder {where!r} holds no images; {usage}")
        splits[split] = files
    classes = tuple(splits["train"])
    unknown = sorted(set(splits["test"]) - set(classes))
    if unknown:
        raise AutoaugError(f"test classes {unknown} do not appear in {path / 'train'}; train classes: {list(classes)}")
    note = ""
    if size is None and len(sizes := {_header_size(p) for files in splits.values() for f in files.values()
                                      for p in f} - {None}) > 1:
        size = DEFAULT_IMAGE_SIZE
        note = mixed_sizes_note(sorted(sizes), size)
    out: list[torch.Tensor] = []
    for files in splits.values():
        items = [(p, str(p)) for c in files for p in files[c]]
        labels = [classes.index(c) for c in files for _ in files[c]]
        out += [decode_images(items, size), torch.tensor(labels, dtype=torch.int64)]
    if out[0].shape[1:] != out[2].shape[1:]:
        raise AutoaugError(f"mixed image sizes: train images are {tuple(out[0].shape[1:])} but test images are "
                           f"{tuple(out[2].shape[1:])} (C, H, W); all images must have the same size")
    return RawData(*out, classes=classes, note=note)


def _header_size(path: Path) -> tuple[int, int] | None:
    """An image file's ``(width, height)`` from its header (``None``: unreadable; decoding names it)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return im.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return None


def load_parquet(path: Path, size: int | None = None) -> RawData:
    if not path.is_dir():
        raise AutoaugError(f"parquet folder {str(path)!r} does not exist; expected train*.parquet and test*.parquet")
    files = {s: sorted(str(p) for p in path.rglob(f"{s}*.parquet")) for s in ("train", "test")}
    if not all(files.values()):
        raise AutoaugError(f"parquet folder {str(path)!r} needs train*.parquet and test*.parquet files")
    import datasets

    shown = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()  # local files: read in seconds, and an error then stands alone
    try:
        return from_hf(datasets.load_dataset("parquet", data_files=files), size=size)
    finally:
        if shown:
            datasets.enable_progress_bars()


def describe_sources() -> list[tuple[str, str, bool]]:
    """``(name, description, available offline)`` for every source."""
    rows = [(s.name, s.description, s.available_offline()) for s in SOURCES.values()]
    return rows + [(f"{p}:PATH", d, True) for p, d in PREFIXED.items()]
