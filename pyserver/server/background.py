"""The sidecar's background jobs, each on a daemon thread of its own: the automatic setup (first run, new model
folders, a model just downloaded), the setup's speed measurement once the user pauses, the decode speeds seen in
use, and unloading models left idle.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from pyserver.tiers.setup import read_config

if TYPE_CHECKING:
    from pyserver.server.sidecar import RyzansteinServer

log = logging.getLogger("ryzanstein")

QUIET_S = 20.0  # no completion for this long: the machine is free to measure


def start(job: Callable[[RyzansteinServer], None], ls: RyzansteinServer, name: str) -> None:
    """Runs job(ls) on a daemon thread named `name`."""
    threading.Thread(target=job, args=(ls,), name=name, daemon=True).start()


def first_setup(ls: RyzansteinServer, measure: bool = False) -> None:
    """No setup decision yet (or new model folders, or a model just downloaded): make one (profile, discovery,
    choice) and serve by it, with no step for the user. The engine's speed is not measured now, while the editor
    starts (the cached measurement serves, else a provisional one); `measure_when_quiet` measures it later."""
    try:
        from pyserver.tiers.setup import run_setup

        result = run_setup(ls.settings.model_folders, measure=measure)
    except Exception:  # noqa: BLE001 - the shipped model keeps serving
        log.exception("automatic setup failed")
        return
    before = ls.plan.completion
    ls.make_plan()
    if ls.plan.completion != before and ls.host.state != "loading":
        ls.load_completion_model()
    if not measure and not result.get("hardware", {}).get("measured", True) and not ls.measure_scheduled:
        ls.measure_scheduled = True  # one waiting measurement, however many setups ran meanwhile
        start(measure_when_quiet, ls, "setup-measure")


def measure_when_quiet(ls: RyzansteinServer) -> None:
    """The setup's speed measurement (a few seconds of both cores) once the user has paused typing, then the
    decision again with it."""
    time.sleep(QUIET_S)
    while time.monotonic() - ls.host.last_used < QUIET_S or ls.host.state == "busy":
        time.sleep(5)
    log.info("measuring this machine's decode speed for the setup (the editor is idle)")
    first_setup(ls, measure=True)
    ls.measure_scheduled = False


def record_speed(ls: RyzansteinServer, tokens: int, tokens_per_s: float) -> None:
    """Decode speeds seen in use correct the setup's predictions (pyserver/tiers/hardware.py); one sample a
    minute at most, from decodes long enough to mean something."""
    now = time.monotonic()
    if tokens < 8 or now - ls.speed_recorded_at < 60 or ls.host.model_path is None:
        return
    ls.speed_recorded_at = now
    from pyserver.models import default_model_path
    from pyserver.tiers.hardware import record_observed

    path = ls.host.model_path
    paths = (read_config() or {}).get("model_paths", {})
    model_id = next((i for i, p in paths.items() if Path(p) == path), None)
    if model_id is None and path == default_model_path():
        model_id = "ryzanstein-code"
    if model_id is not None:
        record_observed(model_id, tokens_per_s)


def keep_memory(ls: RyzansteinServer) -> None:
    """Unloads models idle longer than the setting; they load again when needed."""
    while True:
        time.sleep(30)
        idle_s = ls.settings.unload_idle_minutes * 60
        if not idle_s:
            continue
        ls.tiers.unload_idle()
        if ls.host.model is not None and time.monotonic() - ls.host.last_used > idle_s and ls.host.unload():
            log.info("unloaded the completion model after %d idle minutes", ls.settings.unload_idle_minutes)
