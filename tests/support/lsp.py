"""What the LSP tests with a workspace folder share: starting a session on it with the sidecar's settings, and
sending the sidecar's own commands."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lsprotocol import types as t
from pytest_lsp import LanguageClient, client_capabilities


def capabilities() -> t.ClientCapabilities:
    """VS Code's client capabilities, with inline completion (which pytest-lsp's copy lacks)."""
    caps = client_capabilities("visual-studio-code")
    assert caps.text_document is not None
    caps.text_document.inline_completion = t.InlineCompletionClientCapabilities(dynamic_registration=False)
    return caps


async def start_in(client: LanguageClient, workspace: Path, settings: dict[str, Any]) -> None:
    """initialize (+ initialized) with `workspace` as the one folder and `settings` under "ryzanstein"."""
    await client.initialize_session(
        t.InitializeParams(
            capabilities=capabilities(),
            workspace_folders=[t.WorkspaceFolder(uri=workspace.as_uri(), name="ws")],
            initialization_options={"ryzanstein": settings},
        )
    )


async def command(client: LanguageClient, name: str, *args: Any) -> Any:
    """`ryzanstein.sidecar.<name>` with these arguments."""
    return await client.workspace_execute_command_async(
        t.ExecuteCommandParams(command=f"ryzanstein.sidecar.{name}", arguments=list(args))
    )
