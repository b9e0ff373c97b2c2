#!/usr/bin/env bash
# The GPU check: one command, at most 8 minutes, writes reports/gpu.md (see benchmarks/gpu_check.py).
#   bash benchmarks/gpu_check.sh
# Uses .venv when there is one, else the machine's python3 with the repository on PYTHONPATH; wheels in .whl/
# (for a machine without the registries) are unpacked first. A section whose packages are missing says so in
# the report instead of failing the check.
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python3}
[ -x .venv/bin/python ] && py=.venv/bin/python
if compgen -G ".whl/*.whl" >/dev/null; then
  "$py" -m pip install -q --no-index --no-deps --no-compile --target /tmp/autoaug-site .whl/*.whl
  export PYTHONPATH=/tmp/autoaug-site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-} PYTHONUNBUFFERED=1 RAY_AUTH_MODE=disabled
timeout 480 "$py" benchmarks/gpu_check.py --out reports/gpu.md --budget-seconds 450
