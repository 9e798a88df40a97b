"""The machine as model selection sees it: RAM (total and available), cores, CPU features, measured memory read
bandwidth and the engine's measured share of it when decoding (both cached: measuring takes a few seconds, and
they do not change between runs)."""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

from pyserver.paths import cache_dir

GIB = 1 << 30
# The engine's decode speed as a share of the bandwidth roofline, for profiles without a measurement of their own
# (bench model --shape 2b4t: 0.50-0.59 on the development machine; setup measures it on each machine).
DEFAULT_EFFICIENCY = 0.55
CACHE_MAX_AGE_S = 30 * 24 * 3600


@dataclass(frozen=True)
class HardwareProfile:
    total_ram: int  # bytes
    available_ram: int
    cores: int  # logical
    physical_cores: int
    features: tuple[str, ...]
    bandwidth_gbs: float  # measured read bandwidth with every core reading
    efficiency: float = DEFAULT_EFFICIENCY  # the engine's decode speed as a share of the bandwidth roofline

    def to_json(self) -> dict[str, object]:
        d = asdict(self)
        d["features"] = list(self.features)
        return d


def measure_bandwidth(threads: int) -> float:
    from pyserver import native

    return float(native.measure_read_bandwidth(256 << 20, threads, 3))


def measure_efficiency(bandwidth_gbs: float, threads: int) -> float:
    """Decodes with a random model of 2B4T-sized layers (6 of them, ~125 MB a token: beyond the caches) and
    returns the share of the bandwidth roofline reached (~2 s)."""
    from pyserver import native
    from pyserver.engine.random_model import random_ternary_model

    native.set_num_threads(threads)
    model = random_ternary_model("bitnet-b1.58", 2560, 6912, 6, 20, 5, 16384, "I2_S")
    s = model.session(64)
    s.eval([1, 2, 3, 4])
    t0 = time.perf_counter()
    for i in range(24):
        s.append([5 + i])
    per_token = (time.perf_counter() - t0) / 24
    return round(min(1.0, model.stats.bytes_per_token / per_token / 1e9 / bandwidth_gbs), 3)


def profile(cache: Path | None = None, remeasure: bool = False) -> HardwareProfile:
    """This machine's profile; the bandwidth comes from the cache when it was measured on this CPU recently."""
    from pyserver import native

    vm = psutil.virtual_memory()
    cores = os.cpu_count() or 1
    info = native.cpu_info()
    features = tuple(sorted(k for k, v in info["features"].items() if v)) if isinstance(info["features"], dict) \
        else tuple(info["features"])
    key = f"{cores}:{','.join(features)}"
    path = (cache or cache_dir()) / "hardware.json"
    bandwidth = efficiency = None
    if not remeasure and path.is_file():
        try:
            saved = json.loads(path.read_text())
            if saved.get("key") == key and time.time() - float(saved.get("time", 0)) < CACHE_MAX_AGE_S:
                bandwidth, efficiency = float(saved["bandwidth_gbs"]), float(saved["efficiency"])
        except (ValueError, KeyError, OSError):
            bandwidth = efficiency = None
    if bandwidth is None or efficiency is None:
        bandwidth = measure_bandwidth(min(cores, 16))
        efficiency = measure_efficiency(bandwidth, min(cores, 16))
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"key": key, "time": time.time(), "bandwidth_gbs": bandwidth,
                                        "efficiency": efficiency}))
        except OSError:
            pass  # a read-only home: measure again next time
    return HardwareProfile(total_ram=vm.total, available_ram=vm.available, cores=cores,
                           physical_cores=psutil.cpu_count(logical=False) or cores, features=features,
                           bandwidth_gbs=round(bandwidth, 2), efficiency=efficiency)
