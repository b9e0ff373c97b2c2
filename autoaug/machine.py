"""The machine a figure was measured on, in one line: CPU model, cores, whether it computes bfloat16 natively, GPU.

Timings differ by a factor of two or more between CPUs with and without native bfloat16 (AMX-BF16 or AVX512-BF16:
``auto`` precision trains in bfloat16 on the first and in float32 on the second), so every benchmark, table and
report names the CPU, not only the architecture.
"""

from __future__ import annotations

import functools
import os
import platform
from pathlib import Path

BF16_FLAGS = ("amx_bf16", "avx512_bf16")  # /proc/cpuinfo flags of CPUs with native bfloat16 arithmetic


@functools.cache
def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def cpu_flags(cpuinfo: str | None = None) -> set[str]:
    """The CPU's feature flags from ``cpuinfo`` (``/proc/cpuinfo``'s text; this machine's by default)."""
    text = _cpuinfo() if cpuinfo is None else cpuinfo
    line = next((ln for ln in text.splitlines() if ln.split(":")[0].strip() in ("flags", "Features")), "")
    return set(line.partition(":")[2].split())


def cpu_name(cpuinfo: str | None = None) -> str:
    """The CPU's model name from ``cpuinfo`` (this machine's by default), else what :mod:`platform` knows."""
    text = _cpuinfo() if cpuinfo is None else cpuinfo
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and value.strip():
            return value.strip()
    return platform.processor() or platform.machine()


def native_bf16(cpuinfo: str | None = None) -> list[str]:
    """The native-bfloat16 flags this CPU has (empty: bfloat16 would be emulated, ``auto`` trains in float32)."""
    flags = cpu_flags(cpuinfo)
    return [f for f in BF16_FLAGS if f in flags]


def describe() -> str:
    """This machine in one line, e.g. ``AMD EPYC (x86_64), 2 cores, no native bfloat16, no GPU``."""
    import torch

    bf16 = native_bf16()
    gpu = f"GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else "no GPU"
    return (f"{cpu_name()} ({platform.machine()}), {os.cpu_count()} cores, "
            f"{'bfloat16 natively (' + ', '.join(bf16) + ')' if bf16 else 'no native bfloat16'}, {gpu}")
