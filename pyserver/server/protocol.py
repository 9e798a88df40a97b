"""The LSP protocol with one fix: a request whose params cannot be read gets an InvalidParams error response.

pygls raises while decoding such a message and never answers, which leaves the client waiting forever.
"""

from __future__ import annotations

import logging
from typing import Any

from pygls.exceptions import JsonRpcInvalidParams
from pygls.protocol import LanguageServerProtocol

log = logging.getLogger("ryzanstein")


class _Answered:
    """Stands in for a message already answered here; pygls' dispatcher skips it (not JSON-RPC 2.0)."""

    jsonrpc = "answered"


class RyzansteinProtocol(LanguageServerProtocol):
    def structure_message(self, data: dict[str, Any]) -> Any:
        try:
            return super().structure_message(data)
        except Exception as exc:
            if "id" in data and "method" in data:
                log.warning("malformed %s request %r: %s", data.get("method"), data.get("id"), exc.__cause__ or exc)
                err = JsonRpcInvalidParams(f"invalid params for {data.get('method')}: {exc.__cause__ or exc}")
                self._send_response(data["id"], error=err.to_response_error())
                return _Answered()
            raise
