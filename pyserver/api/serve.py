"""`python -m pyserver api`: the OpenAI-compatible API on 127.0.0.1 (by default), with the model the serving plan
picks for refactors (or --model)."""

from __future__ import annotations

import logging
import os
import socket

import uvicorn

from pyserver.api.app import Api
from pyserver.engine.host import ModelHost

log = logging.getLogger("ryzanstein")


def serve(
    host: str = "127.0.0.1", port: int = 8080, model: str = "", api_key: str | None = None, threads: int = 0
) -> int:
    engine = ModelHost()
    engine.load(model, threads)
    if engine.model is None:
        log.error("no model: %s", engine.error)
        print(f"error: the model did not load: {engine.error}")
        return 2
    api = Api(engine, api_key or os.environ.get("RYZANSTEIN_API_KEY") or None)
    # Bound before the banner: a port already taken is an error, not a "serving" line followed by one.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        print(f"error: cannot listen on {host} port {port} ({exc.strerror or exc}); choose another with --port")
        return 2
    print(
        f"ryzanstein API: http://{host}:{port}/v1 (model '{api.model_id}'{', key required' if api.api_key else ''})",
        flush=True,
    )
    server = uvicorn.Server(uvicorn.Config(api.app(), log_level="warning"))
    server.run(sockets=[sock])
    return 0
