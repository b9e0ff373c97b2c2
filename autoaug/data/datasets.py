"""Named image-classification sources → :class:`DatasetSplits` of uint8 tensors ``[N, C, H, W]``.

The sources are in :mod:`autoaug.data.sources`; decoded arrays are cached on disk (:mod:`autoaug.data.cache`) after
the first load. Splits: ``train`` / ``val`` (carved from train, stratified, seeded) / ``test``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from autoaug.data.cache import cached, tree_fingerprint
from autoaug.data.names import DEFAULT_DATASET
from autoaug.data.resize import check_image_size, fit_tensor
from autoaug.data.sources import PREFIXED, SOURCES, RawData, load_hub, load_imagefolder, load_parquet, source_names
from autoaug.errors import AutoaugError, choice_error
from autoaug.seeding import derive_seed, make_generator


@dataclass(frozen=True)
class DatasetSplits:
    """Train / val / test images (``uint8 [N, C, H, W]``) and labels (``int64 [N]``) of one dataset."""

    name: str
    classes: tuple[str, ...]
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    note: str = ""  # how the images were made to fit, said in the summary

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)``."""
        return tuple(self.train_x.shape[1:])  # type: ignore[return-value]

    def summary(self) -> str:
        c, h, w = self.image_shape
        return (f"{self.name}: {len(self.train_y)} train / {len(self.val_y)} val / {len(self.test_y)} test, "
                f"{c}x{h}x{w}, {self.num_classes} classes" + (f" ({self.note})" if self.note else ""))


def _validated(raw: RawData, name: str) -> RawData:
    if len(raw.classes) < 2 or len(torch.unique(raw.train_y)) < 2:
        only = raw.classes[int(raw.train_y[0])] if len(raw.train_y) else raw.classes[0]
        raise AutoaugError(f"dataset {name!r} has a single class {only!r}; a classifier needs at least 2")
    return raw


def load_raw(name: str, image_size: int | None = None) -> RawData:
    """Decode (or read from the cache) the whole source ``name``, its images made ``image_size`` square where
    given (:mod:`autoaug.data.resize`; cached at that size)."""
    size = check_image_size(image_size)
    prefix, sep, rest = name.partition(":")
    if sep and prefix in PREFIXED:
        if not rest:
            raise AutoaugError(f"dataset {name!r} needs a path: {prefix}:PATH with {PREFIXED[prefix]}")
        path = Path(rest).expanduser().resolve()
        loader = load_imagefolder if prefix == "imagefolder" else load_parquet
        if not path.is_dir():
            return loader(path)  # raises the clear "does not exist" error
        key = f"{prefix}-{tree_fingerprint(path)}-{size or 'own'}"
        return cached(key, lambda: _validated(loader(path, size), name))
    key, build = _named(name)
    if size is None:
        return build() if name == DEFAULT_DATASET else cached(key, build)
    return cached(f"{key}-{size}", lambda: _fitted(cached(key, build), size))


def _named(name: str) -> tuple[str, Callable[[], RawData]]:
    """The cache key and the loader of a named source: offline where it can be, else from the hub."""
    spec = SOURCES.get(name)
    if spec is None:
        raise choice_error("dataset", name, source_names())
    if spec.local is not None and spec.available_offline():
        return f"{spec.name}-local", spec.local
    if spec.hub is None:
        raise AutoaugError(f"dataset {name!r} is not available on this machine")
    return f"{spec.name}-hub", lambda: load_hub(spec)


def _fitted(raw: RawData, size: int) -> RawData:
    h, w = raw.train_x.shape[-2:]
    return replace(raw, train_x=fit_tensor(raw.train_x, size), test_x=fit_tensor(raw.test_x, size),
                   note=f"resized from {w}x{h} to {size}x{size}" if (h, w) != (size, size) else raw.note)


def stratified_split(y: torch.Tensor, n_take: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices ``(taken, rest)``: ``n_take`` samples whose class shares match ``y``'s, chosen at random."""
    n = len(y)
    perm = torch.randperm(n, generator=generator)
    yp = y[perm]
    order = torch.argsort(yp, stable=True)
    counts = torch.bincount(yp)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.empty(n, dtype=torch.int64)
    rank[order] = torch.arange(n) - starts[yp[order]]
    key = (rank.double() + 0.5) / counts[yp].double()
    by_key = perm[torch.argsort(key, stable=True)]
    return by_key[:n_take].sort().values, by_key[n_take:].sort().values


def _count(size: float | int, total: int, what: str) -> int:
    if isinstance(size, float) and not size.is_integer():
        if not 0.0 <= size < 1.0:
            raise AutoaugError(f"{what} {size!r} is out of range; give a fraction in [0, 1) or a count")
        return round(size * total)
    n = int(size)
    if not 0 <= n < total:
        raise AutoaugError(f"{what} {size!r} is out of range; allowed: 0 to {total - 1} images")
    return n


def make_splits(raw: RawData, name: str, *, val_size: float | int = 0.1, train_size: int | None = None,
                seed: int = 0) -> DatasetSplits:
    """Carve a stratified, seeded ``val`` split from ``raw.train`` and optionally reduce ``train``."""
    _validated(raw, name)
    n_val = _count(val_size, len(raw.train_y), "val size")
    val_idx, train_idx = stratified_split(raw.train_y, n_val, make_generator(derive_seed(seed, "val")))
    data = DatasetSplits(
        name=name, classes=raw.classes,
        train_x=raw.train_x[train_idx], train_y=raw.train_y[train_idx],
        val_x=raw.train_x[val_idx], val_y=raw.train_y[val_idx],
        test_x=raw.test_x, test_y=raw.test_y, note=raw.note,
    )
    return data if train_size is None else reduce_train(data, train_size, seed)


def reduce_train(data: DatasetSplits, train_size: int, seed: int = 0) -> DatasetSplits:
    """``data`` with ``train_size`` of its training images, stratified and seeded (val and test unchanged)."""
    k = len(data.classes)
    if not k <= train_size <= len(data.train_y):
        raise AutoaugError(f"train size {train_size} is out of range; allowed: {k} to {len(data.train_y)} "
                           f"(the training images left after the val split)")
    keep, _ = stratified_split(data.train_y, train_size, make_generator(derive_seed(seed, "train")))
    return replace(data, train_x=data.train_x[keep], train_y=data.train_y[keep])


def load_dataset(name: str = DEFAULT_DATASET, *, val_size: float | int = 0.1, train_size: int | None = None,
                 seed: int = 0, image_size: int | None = None) -> DatasetSplits:
    """Load source ``name`` and split it. ``val_size``: fraction or count; ``train_size``: reduced train set;
    ``image_size``: every image made that size square (default: the images' own, or for a folder of mixed sizes
    :data:`~autoaug.data.resize.DEFAULT_IMAGE_SIZE`)."""
    return make_splits(load_raw(name, image_size), name, val_size=val_size, train_size=train_size, seed=seed)
