"""The machine as model selection sees it: RAM (total and available), cores, CPU features, and measured memory
read bandwidth (cached: measuring takes a second, and it does not change between runs)."""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

GIB = 1 << 30
CACHE_MAX_AGE_S = 30 * 24 * 3600


@dataclass(frozen=True)
class HardwareProfile:
    total_ram: int  # bytes
    available_ram: int
    cores: int  # logical
    physical_cores: int
    features: tuple[str, ...]
    bandwidth_gbs: float  # measured read bandwidth with every core reading

    def to_json(self) -> dict[str, object]:
        d = asdict(self)
        d["features"] = list(self.features)
        return d


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ryzanstein"


def measure_bandwidth(threads: int) -> float:
    from pyserver import native

    return float(native.measure_read_bandwidth(256 << 20, threads, 3))


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
    bandwidth = None
    if not remeasure and path.is_file():
        try:
            saved = json.loads(path.read_text())
            if saved.get("key") == key and time.time() - float(saved.get("time", 0)) < CACHE_MAX_AGE_S:
                bandwidth = float(saved["bandwidth_gbs"])
        except (ValueError, KeyError, OSError):
            bandwidth = None
    if bandwidth is None:
        bandwidth = measure_bandwidth(min(cores, 16))
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"key": key, "time": time.time(), "bandwidth_gbs": bandwidth}))
        except OSError:
            pass  # a read-only home: measure again next time
    return HardwareProfile(total_ram=vm.total, available_ram=vm.available, cores=cores,
                           physical_cores=psutil.cpu_count(logical=False) or cores, features=features,
                           bandwidth_gbs=round(bandwidth, 2))
