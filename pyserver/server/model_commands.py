"""The sidecar's model and status commands: status, acceptance (a suggestion taken), models (the registry table),
download and cancelDownload (a registry model fetched in the background, then served with no restart)."""

from __future__ import annotations

import asyncio
from typing import Any

from pyserver.server.background import first_setup
from pyserver.server.command_args import AcceptanceArgs, ModelIdArgs, parse
from pyserver.server.sidecar import RyzansteinServer


def cmd_status(ls: RyzansteinServer, *args: Any) -> dict[str, Any]:
    del args
    status = ls.host.status()
    status["computed_completions"] = ls.pipeline.model_runs
    status["finished_completions"] = ls.pipeline.finished_runs
    status["cancelled_completions"] = ls.pipeline.stopped_runs
    status["index"] = ls.index.status()
    status["larger_tier"] = ls.tiers.status()
    status["serving_plan"] = ls.plan.reasons
    status["acceptance"] = ls.acceptance.summary()
    status["last_outcome"] = ls.outcomes.last
    status["outcomes"] = dict(ls.outcomes.counts)
    return status


def cmd_acceptance(ls: RyzansteinServer, *args: Any) -> dict[str, Any]:
    """The user took (part of) the suggestion last shown in that document (see `AcceptanceArgs`)."""
    a = parse(AcceptanceArgs, args)
    counted = ls.acceptance.accepted(a.uri, a.event)
    if counted:
        ls.send_status()
    return {"counted": counted}


async def cmd_models(ls: RyzansteinServer, *args: Any) -> dict[str, Any]:
    """Every registry model with its tier, download size, memory, predicted speed here and whether it is present;
    what serves now; downloads under way."""
    del args
    from pyserver.tiers.setup import models_table

    table = await asyncio.get_running_loop().run_in_executor(
        None, lambda: models_table(ls.settings.model_folders, measure=False)
    )
    return table | {
        "serving": {"completion": ls.host.model_path.name if ls.host.model_path else None, "reasons": ls.plan.reasons},
        "downloads": ls.downloads.status(),
    }


def cmd_download(ls: RyzansteinServer, *args: Any) -> dict[str, Any]:
    """Downloads a registry model in the background (progress as ryzanstein/download notifications), then runs the
    setup's discovery again and serves by the new plan, with no restart."""
    from pyserver.tiers.download import download_model
    from pyserver.tiers.registry import Registry

    a = parse(ModelIdArgs, args)
    spec = Registry.load().by_id(a.id)
    if spec is None:
        raise ValueError(f"no model {a.id!r} in the registry")
    job = ls.downloads.start(
        spec.id,
        lambda progress, cancelled: download_model(spec, progress=progress, cancelled=cancelled),
        lambda _path: first_setup(ls),
    )
    return job.to_json()


def cmd_cancel_download(ls: RyzansteinServer, *args: Any) -> dict[str, Any]:
    return {"cancelled": ls.downloads.cancel(parse(ModelIdArgs, args).id)}
