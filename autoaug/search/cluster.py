"""Ray plumbing shared by searches and final retrains: start or join a cluster, size a trial, pick its device.

The search dataset travels through Ray's object store as numpy arrays (zero-copy, shared by all trials on a
node): :func:`pack` / :func:`unpack`. Only the final retrains pack the test split.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np
import torch

from autoaug.data.datasets import DatasetSplits
from autoaug.errors import AutoaugError

SEARCH_KEYS = ("train_x", "train_y", "val_x", "val_y")
TEST_KEYS = ("test_x", "test_y")


def start_ray(address: str | None, num_cpus: int | None) -> bool:
    """Connect to ``address`` (or RAY_ADDRESS), else start a quiet local Ray. True when we started it."""
    import ray

    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "2")  # a killed driver loses at most 2 s of search state
    os.environ.setdefault("TUNE_PRINT_ALL_TRIAL_ERRORS", "0")  # the progress line and MLflow carry the error
    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # the legacy reporter honours verbose=0
    try:
        if address:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        else:
            ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False, configure_logging=False)
    except (ConnectionError, ValueError, RuntimeError) as e:
        raise AutoaugError(f"cannot connect to the Ray cluster at {address!r}: {e}") from None
    return True


def trial_resources(cpus: float | None, gpus: float | None,
                    cluster: dict[str, float] | None = None) -> tuple[dict[str, float], float | None]:
    """Per-trial resources and GPU memory cap, from the Ray cluster's resources (``cluster``, default: the
    running cluster's; the driver's own devices do not count, so a head node without a GPU still sends trials to
    its GPU workers). A GPU share when the cluster has GPUs (default 0.25: four trials a card), else a CPU share
    (default half the cluster's CPUs). The memory cap is the share itself for a fraction of a card (fractional
    GPUs are accounting only), none for whole cards. Raises when one trial asks for more than the cluster has."""
    for name, value, low in (("cpus", cpus, "above 0"), ("gpus", gpus, "0 or more")):
        if value is not None and not (value > 0 if name == "cpus" else value >= 0):
            raise AutoaugError(f"{value:g} {name} per trial: give a number {low}")
    if cluster is None:
        import ray

        cluster = ray.cluster_resources()
    have_gpu = cluster.get("GPU", 0) > 0
    gpu = (0.25 if have_gpu else 0.0) if gpus is None else gpus
    cpu = cpus if cpus is not None else (1.0 if gpu > 0 else max(1.0, cluster.get("CPU", 1) / 2))
    for name, want, have in (("cpus", cpu, cluster.get("CPU", 0)), ("gpus", gpu, cluster.get("GPU", 0))):
        if want > have:
            raise AutoaugError(f"{want:g} {name} per trial is more than the {have:g} this Ray cluster has")
    return {"cpu": cpu, "gpu": gpu}, (gpu if 0 < gpu < 1 else None)


def concurrent(resources: dict[str, float], cluster: dict[str, float] | None = None) -> int:
    """How many tasks of ``resources`` the Ray cluster (``cluster``, default: the running one's) runs at a time."""
    if cluster is None:
        import ray

        cluster = ray.cluster_resources()
    fits = [cluster.get(k.upper(), 0) / v for k, v in resources.items() if v > 0]
    return max(1, int(min(fits, default=1)))


def widened(resources: dict[str, float], runs: int, cluster: dict[str, float] | None = None,
            node_cpus: float | None = None) -> dict[str, float]:
    """The resources of each of ``runs`` CPU runs where fewer of them than fit at a time (:func:`concurrent`) would
    leave CPUs idle: a whole multiple of their CPU share, up to one node's CPUs (``node_cpus``, default: the largest
    live node of the running cluster). Runs on GPUs keep their share."""
    if resources.get("gpu", 0) > 0:
        return resources
    slots = concurrent(resources, cluster)
    if runs <= 0 or runs >= slots:
        return resources
    if node_cpus is None:
        import ray

        node_cpus = max(n["Resources"].get("CPU", 0) for n in ray.nodes() if n["Alive"])
    cpu = min(resources["cpu"] * (slots // runs), node_cpus)
    return {**resources, "cpu": max(resources["cpu"], float(int(cpu)))}


def worker_device(gpu_memory_fraction: float | None) -> str:
    """The GPU Ray assigned to this worker (with a memory cap, as fractional GPUs share one card), or CPU.
    Also sets torch's threads to the worker's CPU share (Ray sets OMP_NUM_THREADS)."""
    import ray

    torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1") or 1)))
    gpu_ids = ray.get_gpu_ids()
    if not gpu_ids:
        return "cpu"
    if not torch.cuda.is_available():
        raise AutoaugError(f"Ray gave this worker GPU {gpu_ids[0]}, but torch sees no CUDA device here")
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")
    index = visible.index(str(gpu_ids[0])) if str(gpu_ids[0]) in visible else 0
    if gpu_memory_fraction is not None:
        torch.cuda.set_per_process_memory_fraction(gpu_memory_fraction, index)
    return f"cuda:{index}"


def node_id() -> str:
    """The Ray node this process runs on."""
    import ray

    return ray.get_runtime_context().get_node_id()


def pack(data: DatasetSplits, *, test: bool = False) -> dict[str, Any]:
    """``data`` as numpy arrays for Ray's object store; the test split only with ``test=True``."""
    keys = SEARCH_KEYS + (TEST_KEYS if test else ())
    return {"name": data.name, "classes": data.classes, **{k: getattr(data, k).numpy() for k in keys}}


def unpack(packed: dict[str, Any]) -> DatasetSplits:
    """Tensors that share the (read-only) object-store memory; training only ever indexes them. A pack without
    the test split gets an empty one."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        arrays = {k: torch.from_numpy(np.asarray(packed[k])) for k in SEARCH_KEYS + TEST_KEYS if k in packed}
    arrays.setdefault("test_x", arrays["val_x"][:0])
    arrays.setdefault("test_y", arrays["val_y"][:0])
    return DatasetSplits(name=packed["name"], classes=tuple(packed["classes"]), **arrays)
