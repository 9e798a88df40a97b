// Workspace Trust: a folder VS Code has not been told to trust opens in Restricted Mode. Ryzanstein then runs
// nothing (it would start a Python sidecar on the folder's code, and Write Tests runs pytest on it): the status bar
// says so in one line, its commands say so too, and it starts as soon as the folder is trusted, with no reload.

import * as vscode from "vscode";

import { StatusItem } from "./status";

export const RESTRICTED_REASON = "Ryzanstein is off in Restricted Mode: it would run Python (its sidecar, and " +
  "pytest for Write Tests) on this folder's code. Trust the folder to turn it on (click here).";

/** In Restricted Mode: the status and the commands say why nothing runs; `start` runs once the folder is trusted.
 * Returns false when the folder is trusted already (the caller starts at once). */
export function waitForTrust(ctx: vscode.ExtensionContext, start: () => Promise<void>): boolean {
  if (vscode.workspace.isTrusted) {
    return false;
  }
  const status = new StatusItem();
  status.update({ state: "restricted", restricted: RESTRICTED_REASON });
  const commands = (ctx.extension.packageJSON as { contributes?: { commands?: { command: string }[] } })
    .contributes?.commands ?? [];
  const placeholders = commands.map((c) => vscode.commands.registerCommand(c.command, async () => {
    const pick = await vscode.window.showWarningMessage(RESTRICTED_REASON.replace(" (click here)", ""),
      "Manage Workspace Trust");
    if (pick) {
      await vscode.commands.executeCommand("workbench.trust.manage");
    }
  }));
  const granted = vscode.workspace.onDidGrantWorkspaceTrust(() => {
    granted.dispose();
    placeholders.forEach((p) => p.dispose());
    status.dispose();
    void start();
  });
  ctx.subscriptions.push(status, granted, ...placeholders);
  return true;
}
