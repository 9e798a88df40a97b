"""The language server: the one RyzansteinServer (sidecar.py), the LSP methods and commands it answers, and
`serve()`. Importing this module registers every handler on `server`.

The handlers live by job: lifecycle.py (initialize, settings, shutdown), documents.py (document sync),
completion_handler.py (inline completions), refactor_commands.py, model_commands.py and index_commands.py (the
`ryzanstein.sidecar.*` commands, their arguments read by command_args.py), with background.py (setup, speed
measurement, memory keeping) and progress.py (work-done progress) under them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from lsprotocol import types as t

from pyserver import __version__
from pyserver.server import (
    completion_handler,
    documents,
    index_commands,
    inspect_commands,
    lifecycle,
    model_commands,
    refactor_commands,
)
from pyserver.server.sidecar import RyzansteinServer

log = logging.getLogger("ryzanstein")

# The LSP methods the sidecar answers: (method, registration options, handler).
FEATURES: list[tuple[str, Any, Callable[..., Any]]] = [
    (t.INITIALIZE, None, lifecycle.initialize),
    (t.INITIALIZED, None, lifecycle.initialized),
    (t.WORKSPACE_DID_CHANGE_CONFIGURATION, None, lifecycle.did_change_configuration),
    (t.TEXT_DOCUMENT_DID_OPEN, None, documents.did_open),
    (t.TEXT_DOCUMENT_DID_CHANGE, None, documents.did_change),
    (t.TEXT_DOCUMENT_DID_SAVE, None, documents.did_save),
    (t.TEXT_DOCUMENT_DID_CLOSE, None, documents.did_close),
    (documents.CURSOR_REST, None, documents.cursor_rest),
    (t.TEXT_DOCUMENT_INLINE_COMPLETION, t.InlineCompletionOptions(), completion_handler.inline_completion),
    (t.SHUTDOWN, None, lifecycle.shutdown),
    (lifecycle.PING, None, lifecycle.ping),
]
# The sidecar's commands have a namespace of their own: the language client registers every command a server
# advertises as a VS Code command, which must not collide with the extension's palette commands.
COMMANDS: dict[str, Callable[..., Any]] = {
    "ryzanstein.sidecar.explain": refactor_commands.cmd_explain,
    "ryzanstein.sidecar.docstring": refactor_commands.cmd_docstring,
    "ryzanstein.sidecar.rewrite": refactor_commands.cmd_rewrite,
    "ryzanstein.sidecar.writeTests": refactor_commands.cmd_write_tests,
    "ryzanstein.sidecar.status": model_commands.cmd_status,
    "ryzanstein.sidecar.acceptance": model_commands.cmd_acceptance,
    "ryzanstein.sidecar.models": model_commands.cmd_models,
    "ryzanstein.sidecar.download": model_commands.cmd_download,
    "ryzanstein.sidecar.cancelDownload": model_commands.cmd_cancel_download,
    "ryzanstein.sidecar.reindex": index_commands.cmd_reindex,
    "ryzanstein.sidecar.search": index_commands.cmd_search,
    "ryzanstein.sidecar.inspectModel": inspect_commands.cmd_inspect_model,
    "ryzanstein.sidecar.inspectIndex": inspect_commands.cmd_inspect_index,
}

server = RyzansteinServer()
for _method, _options, _handler in FEATURES:
    server.feature(_method, _options)(_handler)
for _name, _command in COMMANDS.items():
    server.command(_name)(_command)


def serve() -> None:
    """Serves on stdio; the process then ends with the protocol's exit code (LSP: 0 after shutdown and exit, 1
    otherwise, so the extension restarts a sidecar that ended on its own)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("pygls").setLevel(logging.WARNING)  # it logs every message at INFO
    log.info("ryzanstein %s starting (stdio)", __version__)
    started = time.perf_counter()
    server.start_io()
    code = server.protocol.exit_code
    log.info("stopped after %.0f s (exit code %d)", time.perf_counter() - started, code)
    if code:
        raise SystemExit(code)
