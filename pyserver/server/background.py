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
QUIET_WAIT_MAX_S = 15 * 60.0  # past this, measure anyway (a disturbed figure is measured again later)


def start(job: Callable[[RyzansteinServer], None], ls: RyzansteinServer, name: str) -> None:
    """Runs job(ls) on a daemon thread named `name`."""
    threading.Thread(target=job, args=(ls,), name=name, daemon=True).start()


def first_setup(ls: RyzansteinServer, measure: bool = False, busy: Callable[[], bool] | None = None) -> None:
    """No setup decision yet (or new model folders, or a model just downloaded): make one (profile, discovery,
    choice) and serve by it, with no step for the user. The engine's speed is not measured now, while the editor
    starts (the cached measurement serves, else a provisional one); `measure_when_quiet` measures it later."""
    try:
        from pyserver.tiers.setup import run_setup

        result = run_setup(ls.settings.model_folders, measure=measure, busy=busy)
    except Exception:  # noqa: BLE001 - the shipped model keeps serving
        log.exception("automatic setup failed")
        return
    before = ls.plan.completion
    ls.make_plan()
    if ls.plan.completion != before and ls.host.state != "loading":
        ls.load_completion_model()
    hw = result.get("hardware", {})
    if not measure and (not hw.get("measured", True) or hw.get("stale")):
        schedule_measurement(ls)


def schedule_measurement(ls: RyzansteinServer) -> None:
    """One waiting measurement, however many setups asked for it meanwhile."""
    if not ls.measure_scheduled:
        ls.measure_scheduled = True
        start(measure_when_quiet, ls, "setup-measure")


def sidecar_busy(ls: RyzansteinServer) -> bool:
    """The sidecar's own work, which a speed measurement must not share the cores with: a completion (or one
    asked for within QUIET_S), a refactor, the index's scan or embeddings, a warm-up."""
    return (
        time.monotonic() - ls.host.last_used < QUIET_S
        or ls.host.state in ("busy", "loading")
        or ls.host.completion_running.is_set()
        or ls.index.state in ("scanning", "embedding")
    )


def measure_when_quiet(ls: RyzansteinServer) -> None:
    """The setup's speed measurement (some seconds of every core) once the sidecar is idle and other processes
    leave the machine quiet (hardware.quiet_enough), then the decision again with it."""
    from pyserver.tiers.hardware import quiet_enough

    waited = 0.0
    time.sleep(QUIET_S)
    while waited < QUIET_WAIT_MAX_S and (sidecar_busy(ls) or not quiet_enough()):
        time.sleep(5)
        waited += 6
    log.info(
        "measuring this machine's decode speed for the setup (%s)",
        "quiet"
        if waited < QUIET_WAIT_MAX_S
        else "not quiet after 15 minutes: measured anyway, and again later if disturbed",
    )
    first_setup(ls, measure=True, busy=lambda: sidecar_busy(ls))
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
