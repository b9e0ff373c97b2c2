"""Final retrains: each policy on several seeds, evaluated on the test split, in parallel as Ray tasks.

A final run trains on the search's training split with the search's model, epochs and batch size (the
regime the policy was searched for), keeps the validation split for its learning curve, and only then
touches the test split: accuracy, loss, macro precision / recall / F1, confusion matrix, clean training
accuracy on the first ``TRAIN_ACC_IMAGES`` training images (for the generalization gap), common corruptions
(each severity on its own fifth) and FGSM on the first ``robust_size`` test images, and its cost (seconds,
training and validation, and the evaluation's own, augmentation share, peak memory, CPU or GPU use). The
evaluation costs a fraction of the training: ``python benchmarks/bench_train.py`` measures it.
"""

from __future__ import annotations

import math
import resource
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch

from autoaug.augment.policy import Policy
from autoaug.data.datasets import DatasetSplits
from autoaug.train.metrics import classification_metrics
from autoaug.train.robustness import FGSM_EPSILON, corruption_accuracy, fgsm_accuracy
from autoaug.train.trainer import TrainConfig, evaluate, predict, resolve_device, train

TRAIN_ACC_IMAGES = 1000  # clean training accuracy, for the generalization gap: precise enough near 1.0


@dataclass(frozen=True)
class FinalSettings:
    """What every final run of a report shares: training config (its seed is replaced per run) and the
    robustness evaluation."""

    base: TrainConfig
    robust_size: int = 500
    fgsm_epsilon: float = FGSM_EPSILON


def final_run(policy: Policy, seed: int, data: DatasetSplits, settings: FinalSettings,
              keep_model: bool = False) -> dict[str, Any]:
    """Train with ``policy`` and ``seed``, then evaluate on the test split; a JSON-ready record, with the trained
    model under ``model`` (float32, on the CPU, in eval mode; normalization included) where ``keep_model``."""
    cfg = replace(settings.base, seed=seed)
    device = resolve_device(cfg.device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    cpu0, t0 = time.process_time(), time.perf_counter()
    result = train(cfg, data, policy)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    model = result.model
    t_eval = time.perf_counter()
    test = classification_metrics(predict(model, data.test_x, cfg.eval_batch_size), data.test_y)
    n = TRAIN_ACC_IMAGES
    train_acc = evaluate(model, data.train_x[:n], data.train_y[:n], cfg.eval_batch_size)["acc"]
    rx, ry = data.test_x[: settings.robust_size], data.test_y[: settings.robust_size]
    corruptions = corruption_accuracy(model, rx, ry, seed=seed, split=True, batch_size=cfg.eval_batch_size)
    fgsm = fgsm_accuracy(model, rx, ry, epsilon=settings.fgsm_epsilon, batch_size=cfg.eval_batch_size)
    eval_seconds = time.perf_counter() - t_eval
    train_seconds = sum(m["epoch_seconds"] for m in result.history)
    return {
        "policy": policy.name,
        "seed": seed,
        "history": result.history,
        "test": test,
        "train_acc": train_acc,
        "gap": train_acc - test["acc"],
        "corruptions": {name: {str(s): acc for s, acc in levels.items()} for name, levels in corruptions.items()},
        "corruption_acc": sum(a for levels in corruptions.values() for a in levels.values())
        / sum(len(levels) for levels in corruptions.values()),
        "fgsm_acc": fgsm,
        "train_seconds": train_seconds,
        "val_seconds": sum(m.get("val_seconds", 0.0) for m in result.history),
        "eval_seconds": eval_seconds,
        "precision": result.precision,
        "aug_share": sum(m["aug_seconds"] for m in result.history) / train_seconds,
        "control_share": sum(m["control_seconds"] for m in result.history) / train_seconds,
        "synthetic_time_share": sum(m["synthetic_seconds"] for m in result.history) / train_seconds,
        "wall_seconds": wall,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "cpu_util": cpu / (wall * torch.get_num_threads()) if device.type == "cpu" else math.nan,
        "peak_memory_mb": (torch.cuda.max_memory_allocated(device) if device.type == "cuda"
                           else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024) / 2**20,
    } | ({"model": plain_model(model)} if keep_model else {})


def plain_model(model: torch.nn.Module) -> torch.nn.Module:
    """The trained ``model`` as anyone can run it: without its precision wrapper, float32, on the CPU, in eval
    mode. Float images ``[B, C, H, W]`` in ``[0, 1]`` in, logits ``[B, K]`` out."""
    net = getattr(model, "module", model)
    return getattr(net, "_orig_mod", net).float().cpu().eval()  # torch.compile's wrapper holds the module


def _remote_final(packed: dict[str, Any], policy: Policy, seed: int, settings: FinalSettings,
                  gpu_memory_fraction: float | None, keep_model: bool) -> dict[str, Any]:
    from autoaug.search import node_id, unpack, worker_device

    settings = replace(settings, base=replace(settings.base, device=worker_device(gpu_memory_fraction)))
    return {**final_run(policy, seed, unpack(packed), settings, keep_model), "node_id": node_id()}


def run_finals(policies: Sequence[Policy], seeds: Sequence[int], data: DatasetSplits, settings: FinalSettings, *,
               resources: Mapping[str, float], gpu_memory_fraction: float | None,
               on_record: Callable[[dict[str, Any]], None], on_wait: Callable[[], None] = lambda: None,
               skip: Collection[tuple[str, int]] = (), keep: tuple[str, int] | None = None) -> list[dict[str, Any]]:
    """Every (policy, seed) but those named in ``skip`` as a Ray task with ``resources``, in a fresh worker
    each (so the peak memory is the run's own); ``on_record`` gets each record as it arrives, ``on_wait`` is
    called every second while none does (progress). A run that raises gives a record with an ``error`` instead
    of metrics; the others go on. The run ``keep`` names returns its trained model (``model``). Needs a started Ray."""
    import ray

    from autoaug.search import pack

    ref = ray.put(pack(data, test=True))
    # no retries: a run that crashed is reported as failed, not silently trained again
    task = ray.remote(num_cpus=resources["cpu"], num_gpus=resources["gpu"], max_calls=1, max_retries=0)(_remote_final)
    pending = {task.remote(ref, p, s, settings, gpu_memory_fraction, (p.name, s) == keep): (p.name, s)
               for p in policies for s in seeds if (p.name, s) not in skip}
    records = []
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
            if not ready:
                on_wait()
                continue
            (done,) = ready
            name, seed = pending.pop(done)
            try:
                record = ray.get(done)
            except ray.exceptions.RayError as e:  # the run raised, or its worker died (memory, signal, node)
                cause = getattr(e, "cause", None) or e
                record = {"policy": name, "seed": seed, "error": f"{type(cause).__name__}: {cause}".splitlines()[0]}
            records.append(record)
            on_record(record)
    finally:
        for ref_ in pending:  # interrupted: stop what still runs (on a shared cluster it would go on otherwise)
            ray.cancel(ref_, force=True)
    return records
