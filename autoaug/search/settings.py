"""One search's settings, resolved once from ``tune_policy``'s arguments, its budget, or the search it resumes."""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from autoaug.augment.presets import is_photo
from autoaug.data.datasets import DatasetSplits, load_dataset, reduce_train
from autoaug.data.resize import check_image_size
from autoaug.data.sources import folder_name
from autoaug.errors import AutoaugError, choice_error
from autoaug.search.budgets import BUDGETS, SCHEDULERS, rung_epoch, val_every
from autoaug.search.record import RECORD_FILE, SearchRecord
from autoaug.search.space import SPACES_DIR, SearchSpace, load_space, space_file
from autoaug.train.trainer import TrainConfig
from autoaug.train.weights import FINETUNE, check_weights, input_size

RESUMABLE = ("space", "model", "trials", "epochs", "budget", "train_size", "image_size", "scheduler", "seed",
             "precision", "compile", "select", "weights")  # what a resumed search takes from its record


@dataclass(frozen=True)
class SearchSettings:
    """What a search does (``record``, as search.json keeps it), where (``out``) and on what resources."""

    record: SearchRecord
    out: Path
    space: SearchSpace
    extra_seeds: int
    resume: bool = False
    tracking_uri: str | None = None
    address: str | None = None
    num_cpus: int | None = None
    cpus_per_trial: float | None = None
    gpus_per_trial: float | None = None
    echo: Callable[[str], None] = print
    live: bool = False
    system_metrics: bool = False  # MLflow's system metrics of this machine, on the parent run
    notes: tuple[str, ...] = ()  # what the search says first about how its settings were resolved
    data: DatasetSplits | None = field(default=None, repr=False, compare=False)  # loaded once, by resolve

    @property
    def grace(self) -> int:
        """The epoch of ASHA's rung."""
        return rung_epoch(self.record.epochs)

    @functools.cached_property
    def base(self) -> TrainConfig:
        """Every trial's training settings (a trial's own seed and searched values go on top)."""
        r = self.record
        return TrainConfig(model=r.model, epochs=r.epochs, batch_size=r.batch_size, seed=r.seed,
                           precision=r.precision, compile=r.compile, weights=r.weights,
                           val_every=1 if r.scheduler == "pbt" else val_every(self.grace, r.epochs), **r.recipe())


def resolve(dataset: str, given: Mapping[str, Any], storage: str | os.PathLike[str], name: str | None,
            resume: bool, **run: Any) -> SearchSettings:
    """The settings of a new search of ``dataset`` under ``storage`` (``given``: the arguments of
    :data:`RESUMABLE`, ``None`` where left out), or of the one ``resume`` continues (``name``, or the latest
    unfinished one of ``dataset``): its own settings, where a ``given`` one that differs is an error. ``run``: the
    remaining fields of :class:`SearchSettings`."""
    root = Path(storage).expanduser().resolve()
    if root.exists() and not root.is_dir():
        raise AutoaugError(f"storage {str(storage)!r} is a file; give a folder for the searches")
    if resume:
        out = root / name if name else latest_unfinished(root, dataset)
        if out is None or not (out / RECORD_FILE).is_file():
            raise AutoaugError(f"no unfinished search of {dataset!r} to resume under {root}")
        saved = SearchRecord.from_file(out)
        if saved.finished and saved.reported:
            report = f" and its report is in {saved.report}" if saved.report else ""
            raise AutoaugError(f"the search in {out} has finished{report}: nothing to resume")
        given = resumed(given, saved, dataset)
    else:
        out = root / (name or f"{folder_name(dataset)}-{time.strftime('%Y%m%d-%H%M%S')}")
    budget, scheduler = given["budget"] or "small", given["scheduler"] or "asha"
    if budget not in BUDGETS:
        raise choice_error("budget", budget, BUDGETS)
    if scheduler not in SCHEDULERS:
        raise choice_error("scheduler", scheduler, SCHEDULERS)
    b = BUDGETS[budget]
    # the space given, or PBT's; else the one for the data, chosen once it is loaded (see space_for_dataset)
    named = given["space"] or ("per_op" if scheduler == "pbt" else None)
    space = load_space(named) if named else None
    if scheduler == "pbt" and space is not None and space.layer:
        raise AutoaugError(f"--scheduler pbt changes each op's magnitude and probability during training; the space "
                           f"{space.source} is the compact one: give a per-op space, e.g. --space per_op")
    select = b.select if given["select"] is None else given["select"]
    if isinstance(select, bool) or not isinstance(select, int) or select < 0:
        raise AutoaugError(f"select {select!r} must be 0 (no selection stage) or a positive number of trials")
    if resume:
        record = saved
    else:
        if out.exists():
            raise AutoaugError(f"search folder {str(out)!r} already exists; pass --resume to continue it")
        model = given["model"] or b.model
        pretrained_size = input_size(model) if given["weights"] and given["image_size"] is None else None
        record = SearchRecord(
            dataset=dataset, space=space.source if space else "", model=model,
            trials=given["trials"] or b.trials, epochs=given["epochs"] or b.epochs, batch_size=b.batch_size,
            budget=budget,
            train_size=given["train_size"] if given["train_size"] is not None else b.train_size,
            image_size=check_image_size(given["image_size"]) or pretrained_size, scheduler=scheduler,
            seed=given["seed"] or 0, precision=given["precision"] or "auto",
            compile=bool(given["compile"]), select=select, study=out.name if scheduler != "pbt" else None,
            points_seed=(given["seed"] or 0) + 1 if select and scheduler != "pbt" else None,
            weights=given["weights"], **(FINETUNE if given["weights"] else b.recipe()))
        check_weights(record.model, record.weights)
    notes = (f"{model} was pretrained on {pretrained_size}x{pretrained_size} images: the data is resized to that "
             "(--image-size N for another size)",) if not resume and pretrained_size else ()
    settings = SearchSettings(record, out, space, b.extra_seeds, resume=resume, notes=notes,  # type: ignore[arg-type]
                              **run)
    settings.base  # noqa: B018  (a bad model, precision or recipe fails here, before anything is written)
    if record.finished:  # read back: nothing to train
        return settings
    ceiling = b.train_size if not resume and given["train_size"] is None else None
    settings = _with_data(settings, ceiling, f"budget {budget!r}")
    if space is None:
        space = load_space(space_for_dataset(dataset, settings.data.image_shape))
        settings = replace(settings, space=space, record=settings.record.replace(space=space.source))
    return settings


def space_for_dataset(dataset: str, image_shape: Sequence[int]) -> str:
    """The dataset's own space when there is one; else ``photos`` for RGB images larger than CIFAR's (its bases
    hold the random resized crop), else ``default``."""
    if (SPACES_DIR / f"{dataset}.yaml").is_file():
        return dataset
    return "photos" if is_photo(image_shape) else "default"


def _with_data(settings: SearchSettings, ceiling: int | None, budget: str) -> SearchSettings:
    """``settings`` with the search's data, loaded once; the ``budget``'s training size (``ceiling``) takes at most
    what the data has, and the search says so first."""
    r = settings.record
    data = load_dataset(r.dataset, train_size=None if ceiling else r.train_size, seed=r.seed, image_size=r.image_size)
    if ceiling is None:
        return replace(settings, data=data)
    if len(data.train_y) >= ceiling:
        return replace(settings, data=reduce_train(data, ceiling, r.seed))
    n = len(data.train_y)
    note = (f"{budget} trains on up to {ceiling} images; {r.dataset} has {n} after its validation split: the search "
            f"trains on all {n}")
    return replace(settings, record=r.replace(train_size=None), data=data, notes=(*settings.notes, note))


def resumed(given: Mapping[str, Any], saved: SearchRecord, dataset: str) -> dict[str, Any]:
    """The settings of a resumed search: its own (``saved``); a ``given`` one that differs is an error naming both
    values."""
    if saved.dataset != dataset:
        raise AutoaugError(f"dataset {dataset!r} contradicts the resumed search's {saved.dataset!r}")
    out = {}
    for key, value in given.items():
        kept = getattr(saved, key)
        same = value is None or value == kept or (key == "space" and load_space(value).source == kept)
        if not same:
            raise AutoaugError(f"--{key.replace('_', '-')} {value!r} contradicts the resumed search's {kept!r}; "
                               "leave it out to resume with the search's own")
        out[key] = kept
    if out["space"] is not None:  # as the search recorded it: a path of its own, or one in autoaug's search_spaces/
        recorded = Path(out["space"])
        out["space"] = str(recorded if recorded.exists() else space_file(recorded))
    return out


def latest_unfinished(root: Path, dataset: str) -> Path | None:
    """The most recent search folder of ``dataset`` under ``root`` with a stage left: its trials (no best policy
    yet) or its report (:func:`autoaug.search.record.note_report` has not noted one)."""
    candidates = []
    for path in root.glob(f"*/{RECORD_FILE}"):
        record = SearchRecord.from_file(path)
        if record.dataset == dataset and not (record.finished and record.reported):
            candidates.append(path.parent)
    return max(candidates, key=lambda p: p.stat().st_mtime, default=None)
