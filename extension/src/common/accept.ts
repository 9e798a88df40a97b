// Accepting suggestions, counted for the local acceptance statistics: Tab runs the item's command (the sidecar
// attaches ryzanstein.acceptedSuggestion), and accept-word / accept-line go through our keybindings to VS Code's own.

import * as vscode from "vscode";

import type { Sidecar } from "./server";

async function tell(sidecar: Sidecar, uri: string, event: string): Promise<void> {
  await sidecar.client?.sendRequest("workspace/executeCommand", {
    command: "ryzanstein.sidecar.acceptance",
    arguments: [{ uri, event }],
  }).catch(() => undefined); // statistics never get in the user's way
}

export function registerAcceptCommands(ctx: vscode.ExtensionContext, sidecar: Sidecar): void {
  const reg = (id: string, fn: (...args: unknown[]) => unknown) =>
    ctx.subscriptions.push(vscode.commands.registerCommand(id, fn));
  reg("ryzanstein.acceptedSuggestion", async (arg: unknown) => {
    const uri = (arg as { uri?: unknown } | undefined)?.uri;
    if (typeof uri === "string") {
      await tell(sidecar, uri, "accepted");
    }
    // An item with a command does not re-trigger by itself: ask for the next suggestion, as after typing.
    await vscode.commands.executeCommand("editor.action.inlineSuggest.trigger");
  });
  const partial = (event: string, builtin: string) => async () => {
    const uri = vscode.window.activeTextEditor?.document.uri.toString();
    await vscode.commands.executeCommand(builtin);
    if (uri) {
      await tell(sidecar, uri, event);
    }
  };
  reg("ryzanstein.acceptWord", partial("accepted_word", "editor.action.inlineSuggest.acceptNextWord"));
  reg("ryzanstein.acceptLine", partial("accepted_line", "editor.action.inlineSuggest.acceptNextLine"));
}
