"""The one-line machine description every benchmark and report states."""

from __future__ import annotations

import os
import platform

from autoaug.machine import cpu_flags, cpu_name, describe, native_bf16

AMX = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8488C
flags\t\t: fpu vme avx2 avx512f avx512_bf16 amx_bf16 amx_tile
"""
EPYC = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC
flags\t\t: fpu vme avx2 fma
"""


def test_cpu_name_and_native_bf16_come_from_cpuinfo() -> None:
    assert cpu_name(AMX) == "Intel(R) Xeon(R) Platinum 8488C"
    assert native_bf16(AMX) == ["amx_bf16", "avx512_bf16"]
    assert cpu_name(EPYC) == "AMD EPYC"
    assert native_bf16(EPYC) == []
    assert "avx2" in cpu_flags(EPYC) and "model" not in cpu_flags(EPYC)


def test_without_cpuinfo_the_name_falls_back_to_platform() -> None:
    assert cpu_name("") == (platform.processor() or platform.machine())
    assert native_bf16("") == []


def test_describe_names_this_machine() -> None:
    line = describe()
    assert line.startswith(f"{cpu_name()} ({platform.machine()}), {os.cpu_count()} cores, ")
    assert ("bfloat16 natively" in line) == bool(native_bf16())
