// Palette commands: the refactors run in the sidecar (which applies their edits); the rest are local.

import * as path from "node:path";
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

type Register = (id: string, fn: () => unknown) => void;

export function registerCommands(ctx: vscode.ExtensionContext, sidecar: Sidecar, showStatus: () => void,
  snooze: Snooze, refreshStatus: () => void, models: ModelManager): void {
  const reg: Register = (id, fn) => ctx.subscriptions.push(vscode.commands.registerCommand(id, fn));
  const explanations = new Explanations();
  ctx.subscriptions.push(vscode.workspace.registerTextDocumentContentProvider(Explanations.scheme, explanations));
  registerRefactors(reg, sidecar, explanations);
  registerCompletionControls(reg, snooze, refreshStatus);
  registerSidecarCommands(reg, sidecar, showStatus, models);
}

/** The refactors: run in the sidecar, which applies their edits. */
function registerRefactors(reg: Register, sidecar: Sidecar, explanations: Explanations): void {
  reg("ryzanstein.explain", () => explain(sidecar, explanations));
  reg("ryzanstein.docstring", () => runInSidecar(sidecar, "ryzanstein.sidecar.docstring", { mode: "add" }));
  reg("ryzanstein.updateDocstring", () => runInSidecar(sidecar, "ryzanstein.sidecar.docstring", { mode: "update" }));
  reg("ryzanstein.writeTests", async () => {
    const result = (await runInSidecar(sidecar, "ryzanstein.sidecar.writeTests")) as Args | undefined;
    if (result?.applied === true && typeof result.uri === "string") {
      await vscode.window.showTextDocument(vscode.Uri.parse(result.uri), { preview: false });
    }
  });
  reg("ryzanstein.rewrite", () => rewrite(sidecar));
}

/** The sidecar's explanation of the selection, opened beside the editor as a read-only Markdown document (no
 * Untitled tab left dirty): its text comes from `explanations`, a content provider of the extension's own. */
async function explain(sidecar: Sidecar, explanations: Explanations): Promise<void> {
  const r = (await runInSidecar(sidecar, "ryzanstein.sidecar.explain")) as Args | undefined;
  if (r && typeof r.text === "string") {
    const editor = vscode.window.activeTextEditor;
    const about = editor ? path.basename(editor.document.uri.path) : "selection";
    const doc = await vscode.workspace.openTextDocument(explanations.add(about, r.text));
    await vscode.window.showTextDocument(doc, { viewColumn: vscode.ViewColumn.Beside, preview: true });
  }
}

/** Read-only documents holding explanations (scheme `ryzanstein-explanation`). */
export class Explanations implements vscode.TextDocumentContentProvider {
  static readonly scheme = "ryzanstein-explanation";
  private readonly texts = new Map<string, string>();
  private count = 0;

  add(about: string, text: string): vscode.Uri {
    this.count += 1;
    const uri = vscode.Uri.from({ scheme: Explanations.scheme, path: `/Explanation ${this.count} (${about}).md` });
    this.texts.set(uri.toString(), `# Explanation (${about})\n\n${text}\n`);
    return uri;
  }

  provideTextDocumentContent(uri: vscode.Uri): string {
    return this.texts.get(uri.toString()) ?? "";
  }
}

async function rewrite(sidecar: Sidecar): Promise<void> {
  const instruction = await vscode.window.showInputBox({ prompt: "How should the selection be rewritten?" });
  if (instruction) {
    await runInSidecar(sidecar, "ryzanstein.sidecar.rewrite", { instruction });
  }
}

/** Inline completions: on or off, asked for now, or snoozed for a while. */
function registerCompletionControls(reg: Register, snooze: Snooze, refreshStatus: () => void): void {
  reg("ryzanstein.toggle", toggleEnabled);
  reg("ryzanstein.trigger", () => vscode.commands.executeCommand("editor.action.inlineSuggest.trigger"));
  reg("ryzanstein.snooze", () => toggleSnooze(snooze, refreshStatus));
}

async function toggleEnabled(): Promise<void> {
  const cfg = vscode.workspace.getConfiguration("ryzanstein");
  await cfg.update("enable", !cfg.get<boolean>("enable", true), vscode.ConfigurationTarget.Global);
}

async function toggleSnooze(snooze: Snooze, refreshStatus: () => void): Promise<void> {
  if (snooze.active()) {
    await snooze.stop();
  } else {
    await snooze.start();
    setTimeout(refreshStatus, snooze.until - Date.now() + 1000); // the status bar shows when it ends
  }
  refreshStatus();
}

/** The sidecar itself: restart it, show its status, re-index the workspace, choose its model. */
function registerSidecarCommands(reg: Register, sidecar: Sidecar, showStatus: () => void, models: ModelManager): void {
  reg("ryzanstein.restart", () => sidecar.restart());
  reg("ryzanstein.showStatus", showStatus);
  reg("ryzanstein.reindex", () => reindex(sidecar));
  reg("ryzanstein.chooseModel", () => models.pick());
}

async function reindex(sidecar: Sidecar): Promise<void> {
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
}
