"""The package as a user installs it: a wheel built from this checkout, installed into a fresh virtualenv, runs a
tiny search from a folder outside the repository (the search spaces and the embedded data come from the wheel)."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow  # builds a wheel and installs it into a fresh venv
def test_a_wheel_installed_in_a_fresh_venv_runs_a_search(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(dist),
                    str(REPO)], check=True, capture_output=True, timeout=600)
    (wheel,) = dist.glob("autoaug-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {"autoaug/search_spaces/default.yaml", "autoaug/data/cifar10_small.npz",
            "autoaug/data/fashion_mnist_small.npz", "autoaug/search/driver.py"} <= set(names)

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    # the dependencies come from this environment (its site-packages, after the venv's own); autoaug from the wheel
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index",
                    str(wheel)], check=True, capture_output=True, timeout=600)

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"HF_HUB_OFFLINE": "1"}
    where = subprocess.run([str(python), "-c", "import autoaug, autoaug.search.space as s; "
                            "print(autoaug.__file__); print(s.SPACES_DIR)"], capture_output=True, text=True,
                           cwd=outside, env=env, check=True).stdout.split()
    assert where == [str(site / "autoaug" / "__init__.py"), str(site / "autoaug" / "search_spaces")]
    search = subprocess.run([str(venv / "bin" / "autoaug"), "search", "--budget", "tiny", "--trials", "2",
                             "--epochs", "1", "--train-size", "300", "--select", "0", "--no-report",
                             "--cpus-per-trial", "1"], capture_output=True, text=True, cwd=outside, env=env,
                            timeout=600)
    assert search.returncode == 0, search.stdout + search.stderr
    assert "space search_spaces/default.yaml" in search.stdout, search.stdout
    (folder,) = (outside / "autoaug-runs").iterdir()
    assert (folder / "best_policy.json").is_file() and (folder / "search.json").is_file()
