// Palette commands: the refactors run in the sidecar (their edits previewed here before anything is written); the
// rest are local.

import * as path from "node:path";
import * as vscode from "vscode";

import { runInspection, vscodeInspectUi } from "./inspect";
import type { ModelManager } from "./models";
import type { Sidecar } from "./server";
import { isProposal, previewAndApply, Proposals } from "./preview";
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

async function runInSidecar(sidecar: Sidecar, command: string, extra: Args = {}, models?: ModelManager,
  proposals?: Proposals): Promise<Args | undefined> {
  const editor = vscode.window.activeTextEditor;
  const client = sidecar.client;
  if (!editor || !client) {
    void vscode.window.showWarningMessage("Ryzanstein: open a file first (and wait for the sidecar to start).");
    return undefined;
  }
  if (editor.document.uri.scheme === Proposals.scheme) {
    void vscode.window.showWarningMessage("Ryzanstein: this is the preview of a proposed change. Apply or Discard " +
      "it (the diff's title bar) first, then run the command in the file itself.");
    return undefined;
  }
  const args = { ...where(editor), ...extra, ...(proposals ? { preview: true } : {}) };
  let result: Args | undefined;
  try {
    result = (await client.sendRequest("workspace/executeCommand", { command, arguments: [args] })) as
      Args | undefined;
  } catch (e) {  // the sidecar refused the request, or restarted while it ran
    void vscode.window.showWarningMessage(`Ryzanstein: ${e instanceof Error ? e.message : String(e)}`);
    return undefined;
  }
  if (result?.gated === true && typeof result.reason === "string") {
    return offerLargerModel(result.reason, models,
      () => runInSidecar(sidecar, command, { ...extra, force: true }, models, proposals));
  }
  if (proposals && isProposal(result?.preview)) {
    const label = typeof result.label === "string" ? result.label : "Ryzanstein";
    const detail = typeof result.report === "string" ? result.report : "";
    const applied = await previewAndApply(client, proposals, result.preview, label, detail);
    return { ...result, applied, uri: result.preview.uri };
  }
  if (result && result.applied === false && typeof result.reason === "string") {
    void vscode.window.showWarningMessage(`Ryzanstein: ${result.reason}`);
  }
  return result;
}

/** The model is measured too weak for this refactor: choose another in the model manager, or run it anyway. */
async function offerLargerModel(reason: string, models: ModelManager | undefined,
  anyway: () => Promise<Args | undefined>): Promise<Args | undefined> {
  const choice = await vscode.window.showWarningMessage(`Ryzanstein: ${reason}`, "Choose a Model…", "Try Anyway");
  if (choice === "Choose a Model…") {
    await models?.pick();
  } else if (choice === "Try Anyway") {
    return anyway();
  }
  return { applied: false, reason };
}

type Register = (id: string, fn: () => unknown) => void;

export function registerCommands(ctx: vscode.ExtensionContext, sidecar: Sidecar, showStatus: () => void,
  snooze: Snooze, refreshStatus: () => void, models: ModelManager): void {
  const reg: Register = (id, fn) => ctx.subscriptions.push(vscode.commands.registerCommand(id, fn));
  const explanations = new Explanations();
  ctx.subscriptions.push(vscode.workspace.registerTextDocumentContentProvider(Explanations.scheme, explanations));
  const proposals = new Proposals();
  ctx.subscriptions.push(vscode.workspace.registerTextDocumentContentProvider(Proposals.scheme, proposals));
  registerRefactors(reg, sidecar, explanations, models, proposals);
  reg("ryzanstein.applyProposal", () => proposals.choose?.("Apply"));
  reg("ryzanstein.discardProposal", () => proposals.choose?.("Discard"));
  registerCompletionControls(reg, snooze, refreshStatus);
  registerSidecarCommands(reg, sidecar, showStatus, models);
}

/** The refactors: run in the sidecar; their edits are previewed as a diff and applied only on "Apply". */
function registerRefactors(reg: Register, sidecar: Sidecar, explanations: Explanations, models: ModelManager,
  proposals: Proposals): void {
  const edit = (command: string, extra: Args = {}) => runInSidecar(sidecar, command, extra, models, proposals);
  reg("ryzanstein.explain", () => explain(sidecar, explanations, models));
  reg("ryzanstein.docstring", () => edit("ryzanstein.sidecar.docstring", { mode: "add" }));
  reg("ryzanstein.updateDocstring", () => edit("ryzanstein.sidecar.docstring", { mode: "update" }));
  reg("ryzanstein.writeTests", async () => {
    const result = await edit("ryzanstein.sidecar.writeTests");
    if (result?.applied === true && typeof result.uri === "string") {
      await vscode.window.showTextDocument(vscode.Uri.parse(result.uri), { preview: false });
    }
    if (result?.applied === true && typeof result.report === "string") {
      void vscode.window.showInformationMessage(`Ryzanstein: ${result.report}`);
    }
  });
  reg("ryzanstein.rewrite", () => rewrite(edit));
}

let streams = 0;

/** The sidecar's explanation of the selection, in a read-only Markdown document beside the editor (no Untitled
 * tab left dirty), filled in as the sidecar streams it (`ryzanstein/explanation` notifications); its text comes
 * from `explanations`, a content provider of the extension's own. Cancel from the progress notification. */
async function explain(sidecar: Sidecar, explanations: Explanations, models: ModelManager): Promise<void> {
  const editor = vscode.window.activeTextEditor;
  const about = editor ? path.basename(editor.document.uri.path) : "selection";
  const token = `explain-${++streams}`;
  let uri: vscode.Uri | undefined;
  const shown = async (text: string): Promise<void> => {
    if (uri) {
      explanations.update(uri, text);
      return;
    }
    uri = explanations.add(about, text);
    const doc = await vscode.workspace.openTextDocument(uri);
    await vscode.window.showTextDocument(doc, { viewColumn: vscode.ViewColumn.Beside, preview: true,
      preserveFocus: true });
  };
  const listening = sidecar.client?.onNotification("ryzanstein/explanation", (p: { token?: string; text?: string }) => {
    if (p.token === token && typeof p.text === "string" && p.text.trim()) {
      void shown(`${p.text} …`);
    }
  });
  try {
    const r = await runInSidecar(sidecar, "ryzanstein.sidecar.explain", { stream: token }, models);
    if (typeof r?.text === "string") {
      await shown(r.text);
    } else if (uri) {
      explanations.update(uri, r?.cancelled === true ? "*(cancelled)*"
        : `*(withheld: ${String(r?.reason ?? "the explanation was not usable")})*`);
    }
  } finally {
    listening?.dispose();
  }
}

/** Read-only documents holding explanations (scheme `ryzanstein-explanation`); `update` refreshes an open one. */
export class Explanations implements vscode.TextDocumentContentProvider {
  static readonly scheme = "ryzanstein-explanation";
  private readonly texts = new Map<string, string>();
  private readonly changed = new vscode.EventEmitter<vscode.Uri>();
  readonly onDidChange = this.changed.event;
  private count = 0;

  add(about: string, text: string): vscode.Uri {
    this.count += 1;
    const uri = vscode.Uri.from({ scheme: Explanations.scheme, path: `/Explanation ${this.count} (${about}).md` });
    this.texts.set(uri.toString(), Explanations.page(about, text));
    return uri;
  }

  update(uri: vscode.Uri, text: string): void {
    const about = /\((.*)\)\.md$/.exec(uri.path)?.[1] ?? "selection";
    this.texts.set(uri.toString(), Explanations.page(about, text));
    this.changed.fire(uri);
  }

  provideTextDocumentContent(uri: vscode.Uri): string {
    return this.texts.get(uri.toString()) ?? "";
  }

  private static page(about: string, text: string): string {
    return `# Explanation (${about})\n\n${text}\n`;
  }
}

async function rewrite(edit: (command: string, extra?: Args) => Promise<unknown>): Promise<void> {
  const instruction = await vscode.window.showInputBox({ prompt: "How should the selection be rewritten?" });
  if (instruction) {
    await edit("ryzanstein.sidecar.rewrite", { instruction });
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
  reg("ryzanstein.inspectModel", () => runInspection(vscodeInspectUi(vscode), sidecar.client, "model"));
  reg("ryzanstein.inspectIndex", () => runInspection(vscodeInspectUi(vscode), sidecar.client, "index"));
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
