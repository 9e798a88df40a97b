// Palette commands: the refactors run in the sidecar (which applies their edits); the rest are local.

import * as vscode from "vscode";

import type { ModelManager } from "./models";
import type { Sidecar } from "./server";
import type { Snooze } from "./snooze";

type Args = Record<string, unknown>;

function where(editor: vscode.TextEditor): Args {
  const s = editor.selection;
  return {
    uri: editor.document.uri.toString(),
    range: { start: { line: s.start.line, character: s.start.character }, end: { line: s.end.line, character: s.end.character } },
    position: { line: s.active.line, character: s.active.character },
  };
}

async function runInSidecar(sidecar: Sidecar, command: string, extra: Args = {}): Promise<unknown> {
  const editor = vscode.window.activeTextEditor;
  if (!editor || !sidecar.client) {
    void vscode.window.showWarningMessage("Ryzanstein: open a file first (and wait for the sidecar to start).");
    return undefined;
  }
  const result = (await sidecar.client.sendRequest("workspace/executeCommand", {
    command,
    arguments: [{ ...where(editor), ...extra }],
  })) as Args | undefined;
  if (result && result.applied === false && typeof result.reason === "string") {
    void vscode.window.showWarningMessage(`Ryzanstein: ${result.reason}`);
  }
  return result;
}

export function registerCommands(ctx: vscode.ExtensionContext, sidecar: Sidecar, showStatus: () => void,
  snooze: Snooze, refreshStatus: () => void, models: ModelManager): void {
  const reg = (id: string, fn: () => unknown) => ctx.subscriptions.push(vscode.commands.registerCommand(id, fn));
  reg("ryzanstein.explain", async () => {
    const r = (await runInSidecar(sidecar, "ryzanstein.sidecar.explain")) as Args | undefined;
    if (r && typeof r.text === "string") {
      const doc = await vscode.workspace.openTextDocument({ content: r.text, language: "markdown" });
      await vscode.window.showTextDocument(doc, { viewColumn: vscode.ViewColumn.Beside, preview: true });
    }
  });
  reg("ryzanstein.docstring", () => runInSidecar(sidecar, "ryzanstein.sidecar.docstring"));
  reg("ryzanstein.writeTests", () => runInSidecar(sidecar, "ryzanstein.sidecar.writeTests"));
  reg("ryzanstein.rewrite", async () => {
    const instruction = await vscode.window.showInputBox({ prompt: "How should the selection be rewritten?" });
    if (instruction) {
      await runInSidecar(sidecar, "ryzanstein.sidecar.rewrite", { instruction });
    }
  });
  reg("ryzanstein.toggle", async () => {
    const cfg = vscode.workspace.getConfiguration("ryzanstein");
    await cfg.update("enable", !cfg.get<boolean>("enable", true), vscode.ConfigurationTarget.Global);
  });
  reg("ryzanstein.trigger", () => vscode.commands.executeCommand("editor.action.inlineSuggest.trigger"));
  reg("ryzanstein.snooze", async () => {
    if (snooze.active()) {
      await snooze.stop();
    } else {
      await snooze.start();
      setTimeout(refreshStatus, snooze.until - Date.now() + 1000); // the status bar shows when it ends
    }
    refreshStatus();
  });
  reg("ryzanstein.restart", () => sidecar.restart());
  reg("ryzanstein.showStatus", showStatus);
  reg("ryzanstein.reindex", async () => {
    if (!sidecar.client) {
      void vscode.window.showWarningMessage("Ryzanstein: the sidecar is not running.");
      return;
    }
    const r = (await sidecar.client.sendRequest("workspace/executeCommand", {
      command: "ryzanstein.sidecar.reindex",
      arguments: [],
    })) as Args | undefined;
    void vscode.window.showInformationMessage(r?.indexed
      ? `Ryzanstein: index updated (${r.files_indexed} files re-indexed, ${r.files_removed} removed; ${r.chunks} chunks).`
      : `Ryzanstein: ${String(r?.reason ?? "nothing to index")}`);
  });
  reg("ryzanstein.chooseModel", () => models.pick());
}
