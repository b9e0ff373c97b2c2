"""A real two-node Ray cluster on this machine: the search and its report run on both nodes (slow)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import die_with_parent, stop_group

RAY = str(Path(sys.executable).parent / "ray")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pids_using(folder: str) -> set[int]:
    """Processes whose command line names ``folder`` (a node's own temp dir: only this test's Ray)."""
    out = subprocess.run(["pgrep", "-f", folder], capture_output=True, text=True).stdout
    return {int(p) for p in out.split()} - {os.getpid()}


@pytest.fixture
def cluster():
    """``ray start --head`` and a second ``ray start --address`` node, one CPU each, in the foreground
    (``--block``) so that stopping them stops only this test's Ray; yields the head's address."""
    temp = tempfile.mkdtemp(prefix="rt-", dir="/tmp")  # short: Ray's socket paths are limited
    port = _free_port()
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    common = ["--block", "--num-cpus", "1", "--disable-usage-stats"]
    nodes = [subprocess.Popen([RAY, "start", "--head", "--port", str(port), "--node-ip-address", "127.0.0.1",
                               "--temp-dir", temp, "--include-dashboard", "false", *common], env=env,
                              start_new_session=True,
                              preexec_fn=die_with_parent, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while subprocess.run([RAY, "status", "--address", address], capture_output=True, env=env).returncode:
            assert time.time() < deadline and nodes[0].poll() is None, "the head node did not start"
            time.sleep(1)
        nodes.append(subprocess.Popen([RAY, "start", "--address", address, "--node-ip-address", "127.0.0.1",
                                       *common], env=env, start_new_session=True, preexec_fn=die_with_parent,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        while "2 node" not in _status(address, env):
            assert time.time() < deadline + 60 and nodes[1].poll() is None, "the second node did not join"
            time.sleep(1)
        yield address
    finally:
        for node in reversed(nodes):
            stop_group(node, timeout=60)
        for pid in _pids_using(temp):  # anything the nodes left behind
            os.kill(pid, signal.SIGKILL)


def _status(address: str, env: dict) -> str:
    code = (f"import ray; ray.init(address={address!r}, log_to_driver=False); "
            "print(len([n for n in ray.nodes() if n['Alive']]), 'node')")
    out = subprocess.run([sys.executable, "-c", code],
                         capture_output=True, text=True, env=env).stdout
    return out.strip()


@pytest.mark.slow
def test_search_and_report_run_on_both_nodes_of_a_real_cluster(cluster: str, mlflow_server: str,
                                                               tmp_path: Path) -> None:
    # trials long enough (10 s and more) that the second node's worker is up before the first node's is free
    # again: Tune reuses an idle trial actor rather than wait for a new one
    cmd = [sys.executable, "-m", "autoaug", "search", "fashion_mnist_small", "--address", cluster,
           "--tracking-uri", mlflow_server, "--budget", "tiny", "--trials", "4", "--epochs", "5",
           "--train-size", "4000", "--scheduler", "fifo", "--cpus-per-trial", "1", "--report-seeds", "2",
           "--compare", "trivialaugment",
           "--storage", str(tmp_path / "runs"), "--reports", str(tmp_path / "reports")]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=1200,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", "RAY_AUTH_MODE": "disabled"})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    (search,) = (tmp_path / "runs").iterdir()
    trials = pd.read_csv(search / "trials.csv")
    assert len(trials) == 4 and trials["node_id"].nunique() == 2  # trials ran on both nodes
    (report,) = (tmp_path / "reports").glob("*/runs.json")
    records = json.loads(report.read_text())["records"]
    assert len(records) == 6 and {r["node_id"] for r in records} <= set(trials["node_id"])
    assert len({r["node_id"] for r in records}) == 2  # the final runs too
