// Activation: find Python, make sure the sidecar is installed, start it, wire settings, status and commands.

import { writeFileSync } from "node:fs";
import * as path from "node:path";
import * as vscode from "vscode";

import { registerAcceptCommands } from "./common/accept";
import { registerCommands } from "./common/commands";
import { CURSOR_REST, watchCursorRest } from "./common/cursorRest";
import { LocalApi, setUpContinue } from "./common/localApi";
import { ModelManager } from "./common/models";
import { findPython } from "./common/python";
import { Sidecar } from "./common/server";
import { clientSettings, needsRestart, serverSettings, wantsSuggestion, whyNoSuggestion } from "./common/settings";
import { ensureSidecar, run } from "./common/setup";
import { Snooze } from "./common/snooze";
import { StatusItem } from "./common/status";
import { waitForTrust } from "./common/trust";

let sidecar: Sidecar | undefined;

async function activeInterpreter(): Promise<string | undefined> {
  const ext = vscode.extensions.getExtension("ms-python.python");
  if (!ext) {
    return undefined;
  }
  const api = (await ext.activate()) as {
    environments?: { getActiveEnvironmentPath(): { path: string } };
  };
  return api.environments?.getActiveEnvironmentPath().path;
}

export async function activate(ctx: vscode.ExtensionContext): Promise<void> {
  if (!waitForTrust(ctx, () => start(ctx))) {
    await start(ctx);
  }
}

async function start(ctx: vscode.ExtensionContext): Promise<void> {
  const output = vscode.window.createOutputChannel("Ryzanstein", { log: true });
  // The shipped model travels once in the VSIX, beside the wheels (which leave it out): the sidecar and every
  // Python run of ours find it through this variable.
  process.env.RYZANSTEIN_MODEL_DIR = path.join(ctx.extensionPath, "extension", "resources", "model");
  const status = new StatusItem();
  ctx.subscriptions.push(output, status);
  const config = () => vscode.workspace.getConfiguration("ryzanstein");
  const get = (key: string) => config().get(key);
  let client = clientSettings(get);

  const found = await findPython(client.pythonPath, { run: (exe, args) => run(exe, args, 20_000), activeInterpreter });
  if (!found.found) {
    status.update({ state: "error", error: "no Python >= 3.10" });
    output.appendLine(`no usable Python:\n  ${found.tried.join("\n  ")}`);
    void vscode.window.showErrorMessage("Ryzanstein needs Python 3.10 or newer: install it or set ryzanstein.pythonPath.",
      "Open Settings").then((p) => p && vscode.commands.executeCommand("workbench.action.openSettings", "ryzanstein.pythonPath"));
    return;
  }
  output.appendLine(`Python ${found.found.version.join(".")} from ${found.found.source}: ${found.found.path}`);
  let python: string;
  try {
    python = await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: "Ryzanstein: setting up" },
      (progress) => ensureSidecar(found.found!.path, ctx.globalStorageUri.fsPath,
        path.join(ctx.extensionPath, "extension", "resources", "wheels"), (message) => progress.report({ message })),
    );
  } catch (e) {
    status.update({ state: "error", error: String(e) });
    output.appendLine(String(e));
    void vscode.window.showErrorMessage("Ryzanstein could not install its sidecar. The log has the details.", "Show Log")
      .then((p) => p && output.show());
    return;
  }

  const storage = ctx.globalStorageUri.fsPath; // a neutral working directory (see setup.ts)
  const snooze = new Snooze(ctx.globalState);
  const showState = (s = status.last) => status.update(s, clientSettings(get).enable, snooze.minutesLeft());
  sidecar = new Sidecar(python, storage, output, () => serverSettings(get), {
    debounceMs: () => clientSettings(get).debounceMs,
    whyNot: (doc, c) => whyNoSuggestion(clientSettings(get), doc.languageId,
      c.triggerKind === vscode.InlineCompletionTriggerKind.Automatic, snooze.minutesLeft()),
    nothingCame: (why) => status.flash(why.startsWith("no suggestion") ? why : `no suggestion: ${why}`),
    outcome: (o) => status.outcome(o),
  }, (s) => showState(s));
  ctx.subscriptions.push(sidecar);
  ctx.subscriptions.push(watchCursorRest(
    (rest) => void sidecar?.client?.sendNotification(CURSOR_REST, rest).catch(() => undefined),
    (doc) => wantsSuggestion(clientSettings(get), doc.languageId, true, snooze.active()),
  ));
  const models = new ModelManager(ctx, sidecar);
  registerCommands(ctx, sidecar, () => showStatus(status, output, snooze), snooze, () => showState(),
    models);
  registerAcceptCommands(ctx, sidecar);
  ctx.subscriptions.push(vscode.commands.registerCommand("ryzanstein.doctor", () => showDoctor(python, storage)));
  const localApi = new LocalApi(python, storage, output);
  ctx.subscriptions.push(localApi, vscode.commands.registerCommand("ryzanstein.setUpContinue",
    () => setUpContinue(python, storage, localApi)));
  ctx.subscriptions.push(vscode.workspace.onDidChangeConfiguration(async (e) => {
    if (!e.affectsConfiguration("ryzanstein")) {
      return;
    }
    const next = clientSettings(get);
    if (needsRestart(client, next)) {
      client = next;
      void vscode.window.showInformationMessage("Ryzanstein: reload the window to use the new Python.");
      return;
    }
    client = next;
    showState();
    await sidecar?.client?.sendNotification("workspace/didChangeConfiguration", { settings: { ryzanstein: serverSettings(get) } });
  }));
  try {
    await sidecar.start();
    // Once the first setup has decided (the sidecar runs it at its first start), offer the tier it recommends.
    setTimeout(() => void models.offerOnce().catch((e: unknown) => output.warn(`model offer: ${e}`)), 15_000);
  } catch (e) {
    // The commands and status item stay usable (restart, doctor) when the first start fails.
    status.update({ state: "error", error: String(e) });
    output.appendLine(`the sidecar did not start: ${e}`);
    void vscode.window.showErrorMessage("Ryzanstein: the sidecar did not start. The log has the details.", "Show Log")
      .then((p) => p && output.show());
  }
}

async function showStatus(status: StatusItem, output: vscode.LogOutputChannel,
  snooze: Snooze): Promise<void> {
  const snoozeItem = snooze.active() ? `Resume suggestions (snoozed for ${snooze.minutesLeft()} more minutes)`
    : "Snooze suggestions for 30 minutes";
  const pick = await vscode.window.showQuickPick(
    ["Toggle inline completions", snoozeItem, "Doctor report", "Restart sidecar", "Choose model…", "Show log"],
    { title: `Ryzanstein: ${status.last.state}${status.last.model ? ` · ${status.last.model}` : ""}` });
  if (pick === "Toggle inline completions") {
    await vscode.commands.executeCommand("ryzanstein.toggle");
  } else if (pick === snoozeItem) {
    await vscode.commands.executeCommand("ryzanstein.snooze");
  } else if (pick === "Doctor report") {
    await vscode.commands.executeCommand("ryzanstein.doctor");
  } else if (pick === "Restart sidecar") {
    await vscode.commands.executeCommand("ryzanstein.restart");
  } else if (pick === "Choose model…") {
    await vscode.commands.executeCommand("ryzanstein.chooseModel");
  } else if (pick === "Show log") {
    output.show();
  }
}

/** The doctor's report rendered (Markdown preview of a file in the extension's storage): no unsaved document. */
async function showDoctor(python: string, cwd: string): Promise<void> {
  const report = await vscode.window.withProgress(
    { location: vscode.ProgressLocation.Notification, title: "Ryzanstein: checking this machine" },
    () => run(python, ["-m", "pyserver", "doctor", "--markdown", "--storage", cwd], 120_000, cwd)
      .catch((e: unknown) => `# Ryzanstein doctor\n\nThe doctor itself failed:\n\n\`\`\`\n${String(e)}\n\`\`\`\n`));
  const file = path.join(cwd, "doctor.md");
  writeFileSync(file, report);
  await vscode.commands.executeCommand("markdown.showPreview", vscode.Uri.file(file));
}

export async function deactivate(): Promise<void> {
  await sidecar?.stop();
}
