"""Run-time CPU dispatch: detection, the cap, and the SIMD self-check."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from pyserver import native


def test_cpu_info_is_consistent() -> None:
    info = native.cpu_info()
    isas = native.available_isas()
    assert isas[0] == "scalar" and info["detected"] == isas[-1]
    if info["features"]["avx2"] and info["features"]["os_ymm"]:
        assert "avx2" in isas
    for isa in isas:
        assert info["self_check"][isa] == "passed", info["self_check"]
    assert info["auto"] == info["active"]


def _cpu_info_with_env(value: str) -> dict:
    env = dict(os.environ, RYZ_MAX_ISA=value)
    out = subprocess.run(
        [sys.executable, "-m", "pyserver", "cpu", "--json"], env=env, check=True, capture_output=True, text=True
    ).stdout
    return json.loads(out)


def test_env_cap_limits_dispatch() -> None:
    assert _cpu_info_with_env("scalar")["active"] == "scalar"
    assert _cpu_info_with_env("scalar")["auto"] == "scalar"
    # a misspelt cap never enables more than asked: it falls back to scalar
    assert _cpu_info_with_env("avx-2")["active"] == "scalar"
    top = native.available_isas()[-1]
    assert _cpu_info_with_env("avx512")["active"] == top


def test_set_isa_cap_round_trip() -> None:
    top = native.available_isas()[-1]
    try:
        native.set_isa_cap("scalar")
        assert native.cpu_info()["auto"] == "scalar"
    finally:
        native.set_isa_cap(top)
    assert native.cpu_info()["auto"] == top


def test_levels_are_asked_one_by_one() -> None:
    """AVX-VNNI sits between AVX2 and AVX-512 but is not implied by AVX-512 (Zen 4 has AVX-512 VNNI and no VEX
    vpdpbusd): each level is listed only when its own features are there, and a cap at a missing level falls to
    the best supported one below it."""
    info = native.cpu_info()
    f = info["features"]
    isas = native.available_isas()
    assert ("avxvnni" in isas) == bool(f["avx_vnni"] and f["avx2"] and f["os_ymm"])
    assert _cpu_info_with_env("avxvnni")["active"] == ("avxvnni" if "avxvnni" in isas else isas[min(1, len(isas) - 1)])
    assert _cpu_info_with_env("avx2")["active"] == ("avx2" if "avx2" in isas else "scalar")
