from __future__ import annotations

import contextlib
import os

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Every test run decodes into its own cache folder; the user's cache is never touched."""
    os.environ["AUTOAUG_CACHE"] = str(tmp_path_factory.mktemp("autoaug-cache"))
    os.environ["HF_HUB_OFFLINE"] = "1"
    torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(autouse=True, scope="session")
def _own_ray_folder() -> None:
    """Every Ray this test run starts (here or in the commands it runs) keeps its files in a folder of the run's
    own, named on its node processes' command lines: :func:`ray_processes` counts those alone, so two test runs
    on one machine do not see each other's Ray. Short, because Ray's socket paths are limited."""
    import shutil
    import tempfile

    folder = tempfile.mkdtemp(prefix="aa-", dir="/tmp")
    os.environ["RAY_TMPDIR"] = folder
    yield
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def photo() -> torch.Tensor:
    """Real RGB photos (scikit-image), resized to 32x32: float ``[3, 3, 32, 32]`` in [0, 1]."""
    from skimage import data

    imgs = [torch.from_numpy(f()).permute(2, 0, 1).float() / 255 for f in (data.astronaut, data.coffee, data.chelsea)]
    return torch.stack([torch.nn.functional.interpolate(i[None], size=(32, 32), mode="area")[0] for i in imgs])


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory):
    """A real ``mlflow server`` subprocess on 127.0.0.1, stopped (with its workers) at the end."""
    with serve_mlflow(tmp_path_factory.mktemp("mlflow")) as (uri, _):
        yield uri


@contextlib.contextmanager
def serve_mlflow(folder):
    """Start ``mlflow server`` on a free port of 127.0.0.1 with its store in ``folder``; yields ``(uri, process)``
    once it answers, and stops it (its whole process group) afterwards."""
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
           "--default-artifact-root", (folder / "artifacts").as_uri(), "--host", "127.0.0.1", "--port", str(port),
           "--workers", "1"]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                            preexec_fn=die_with_parent)
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                urllib.request.urlopen(f"{uri}/health", timeout=2).close()
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError("mlflow server did not start") from None
                time.sleep(0.5)
        yield uri, proc
    finally:
        if proc.poll() is None:
            stop_group(proc, timeout=30)


def die_with_parent() -> None:
    """In a child before it execs: SIGTERM it when the process that started it dies (Linux), so that a killed
    pytest leaves no server behind, whatever its fixtures' teardown could not do."""
    import ctypes
    import signal

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def stop_group(proc, timeout: float) -> None:
    """SIGTERM the process group a ``start_new_session`` child leads, SIGKILL it after ``timeout`` seconds."""
    import signal
    import subprocess

    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def ray_processes() -> set[int]:
    """PIDs of the node processes (raylet, GCS, agents) of the Ray instances this test run started."""
    import subprocess

    out = subprocess.run(["pgrep", "-f", os.environ["RAY_TMPDIR"]], capture_output=True, text=True).stdout
    return {int(p) for p in out.split()} - {os.getpid()}


def own_ray_workers(title: str) -> set[int]:
    """PIDs of the Ray worker processes titled ``title`` (e.g. ``ray::ImplicitFunc.train``) that belong to a Ray
    this test run started: their environment names the run's Ray folder."""
    from pathlib import Path

    mark = f"RAY_TMPDIR={os.environ['RAY_TMPDIR']}".encode()
    found = set()
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and (proc / "cmdline").read_bytes().startswith(title.encode()) \
                    and mark in (proc / "environ").read_bytes().split(b"\0"):
                found.add(int(proc.name))
        except OSError:  # gone, or not ours to read
            continue
    return found


@pytest.fixture(scope="session")
def search(tmp_path_factory: pytest.TempPathFactory, mlflow_server: str):
    """A finished tiny search on real Ray, tracked in the real MLflow server: ``(SearchResult, Ray PIDs before)``."""
    from autoaug.search.driver import tune_policy

    before = ray_processes()
    os.environ["MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL"] = "1"  # MLflow's system metrics every second, not 10 s
    try:
        result = tune_policy("fashion_mnist_small", budget="tiny", trials=8, epochs=3, train_size=600,
                             storage=tmp_path_factory.mktemp("runs"), name="s", num_cpus=2, cpus_per_trial=1,
                             tracking_uri=mlflow_server, system_metrics=True, echo=lambda line: None)
    finally:
        del os.environ["MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL"]
    return result, before


def _thirds(width: int, height: int, level: int):
    """A photo-sized RGB image: its left third red, its middle third green, its right third blue, at ``level``."""
    import numpy as np
    from PIL import Image

    arr = np.zeros((height, width, 3), dtype=np.uint8)
    for i in range(3):
        arr[:, i * width // 3 : (i + 1) * width // 3, i] = level
    return Image.fromarray(arr)


def make_photo_folder(root, n_train: int = 6, n_test: int = 2):
    """``root/{train,test}/{cat,dog,fox}/*.jpg``: photos of many sizes and aspect ratios (60 to 400 px), each class
    at its own brightness."""
    sizes = [(60, 45), (400, 300), (120, 200), (90, 90), (300, 100), (75, 150)]
    for split, n in (("train", n_train), ("test", n_test)):
        for c, name in enumerate(("cat", "dog", "fox")):
            (root / split / name).mkdir(parents=True)
            for i in range(n):
                image = _thirds(*sizes[(i + c) % len(sizes)], level=90 + 70 * c)
                image.save(root / split / name / f"{i}.jpg", quality=95)
    return root
