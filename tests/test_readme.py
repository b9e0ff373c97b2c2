"""The README's Python API section runs as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from conftest import ray_processes

README = Path(__file__).resolve().parent.parent / "README.md"


def test_the_readme_api_section_runs(tmp_path: Path) -> None:
    section = README.read_text().split("## Python API", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    before = ray_processes()
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=900,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert out.returncode == 0, out.stderr[-3000:]
    assert (tmp_path / "mlruns" / "mlflow.db").exists() and list((tmp_path / "reports").glob("*/report.md"))
    assert ray_processes() <= before  # the search and the report stopped the Ray they started
