"""Check in a real browser that the MLflow UI shows what autoaug logs: the dataset input, the code version and the
searched policy's model. Runs a tiny search and its report into a fresh store, serves it with ``mlflow server``,
opens the runs' pages in headless Chromium, checks the rendered pages and saves screenshots.

    python scripts/mlflow_ui_check.py [--out docs/mlflow-ui] [--chromium chromium]

Needs Chromium (Debian: ``apt-get install chromium``). Exits 1 when a page lacks what it should show.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

PAGE_WAIT_MS = 20000  # virtual time Chromium gives the UI's scripts to fetch and render a page


@contextlib.contextmanager
def mlflow_server(store: Path) -> Iterator[str]:
    """``mlflow server`` on a free port of 127.0.0.1 over the sqlite store ``store``; its URL, once it answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{store}",
           "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                            env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                urllib.request.urlopen(f"{url}/health", timeout=2).close()
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError("mlflow server did not start") from None
                time.sleep(0.5)
        yield url
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)


def browse(chromium: str, url: str, screenshot: Path | None = None) -> str:
    """The page at ``url`` as headless Chromium renders it (its DOM); with ``screenshot``, also a PNG of it."""
    base = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1500,1300",
            f"--virtual-time-budget={PAGE_WAIT_MS}"]
    dom = subprocess.run([*base, "--dump-dom", url], capture_output=True, text=True, timeout=180).stdout
    if screenshot is not None:
        subprocess.run([*base, f"--screenshot={screenshot}", url], capture_output=True, timeout=180, check=True)
    return dom


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/mlflow-ui"), help="where the screenshots go")
    parser.add_argument("--chromium", default="chromium")
    args = parser.parse_args()
    from mlflow.tracking import MlflowClient

    from autoaug.report import make_report
    from autoaug.search import tune_policy

    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="aa-ui-") as tmp:
        store = Path(tmp) / "mlruns" / "mlflow.db"
        print("a tiny search and its report (about 2 minutes on 2 cores)", flush=True)
        result = tune_policy("fashion_mnist_small", budget="tiny", trials=3, epochs=2, train_size=400,
                             storage=Path(tmp) / "runs", name="ui", tracking_uri=f"sqlite:///{store}",
                             echo=lambda line: None)
        make_report(result.output_dir, seeds=1, out=Path(tmp) / "reports", compare=["trivialaugment"],
                    echo=lambda line: None)
        client = MlflowClient(f"sqlite:///{store}")
        parent = client.get_run(result.mlflow_run_id)
        experiment = parent.info.experiment_id
        (final,) = [r for r in client.search_runs([experiment], filter_string=(
            f"tags.mlflow.parentRunId = '{parent.info.run_id}' and tags.`autoaug.role` = 'final'"))
            if client.list_artifacts(r.info.run_id)]  # the run with the model has policy.json beside it
        commit = parent.data.tags.get("mlflow.source.git.commit", "")
        (logged,) = client.search_logged_models(experiment_ids=[experiment])
        with mlflow_server(store) as url:
            checks = []
            runs = f"{url}/#/experiments/{experiment}/runs"
            for name, page, wants in (
                    ("search-run", f"{runs}/{parent.info.run_id}",
                     {"dataset input": "fashion_mnist_small", "code version": commit[:7]}),
                    ("final-run", f"{runs}/{final.info.run_id}",
                     {"dataset input": "fashion_mnist_small", "code version": commit[:7]}),
                    ("logged-model", f"{url}/#/experiments/{experiment}/models/{logged.model_id}",
                     {"logged model": logged.model_id, "its run": final.info.run_name})):
                dom = browse(args.chromium, page, args.out / f"{name}.png")
                text = re.sub(r"<[^>]+>", " ", dom)
                for what, needle in wants.items():
                    found = bool(needle) and needle in text
                    checks.append(found)
                    print(f"{name}: {what} {needle!r}: {'shown' if found else 'NOT SHOWN'}")
            print(f"screenshots in {args.out}")
    return 0 if all(checks) else 1


if __name__ == "__main__":
    sys.exit(main())
