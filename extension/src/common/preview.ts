// A refactor's edit, previewed before anything is written: VS Code's diff editor between the file as it is and as
// the edit would leave it (a read-only document of ours), and a notification to Apply or Discard. Applying goes
// through workspace.applyEdit with the document versions the sidecar computed on, so an edit to a document that
// changed meanwhile is refused by VS Code itself.

import * as vscode from "vscode";
import type { LanguageClient } from "vscode-languageclient/node";

/** What the sidecar answers a refactor asked for with `preview: true`. */
export interface Proposal {
  edit: unknown; // an LSP WorkspaceEdit
  uri: string; // the file it changes (or creates)
  text: string; // that file's text once applied
  exists: boolean; // false: the edit creates the file
}

/** Read-only documents holding proposed file texts (scheme `ryzanstein-proposal`). */
export class Proposals implements vscode.TextDocumentContentProvider {
  static readonly scheme = "ryzanstein-proposal";
  private readonly texts = new Map<string, string>();
  private count = 0;

  add(name: string, text: string): vscode.Uri {
    this.count += 1;
    const uri = vscode.Uri.from({ scheme: Proposals.scheme, path: `/${this.count}/${name}` });
    this.texts.set(uri.toString(), text);
    return uri;
  }

  drop(uri: vscode.Uri): void {
    this.texts.delete(uri.toString());
  }

  provideTextDocumentContent(uri: vscode.Uri): string {
    return this.texts.get(uri.toString()) ?? "";
  }
}

export function isProposal(value: unknown): value is Proposal {
  const p = value as Partial<Proposal> | undefined;
  return !!p && typeof p.uri === "string" && typeof p.text === "string" && typeof p.edit === "object";
}

/** Shows the proposal as a diff and asks; applies it on "Apply". Returns whether it was applied. */
export async function previewAndApply(client: LanguageClient, proposals: Proposals, proposal: Proposal,
  label: string, detail = ""): Promise<boolean> {
  const target = vscode.Uri.parse(proposal.uri);
  const name = target.path.split("/").pop() ?? "file";
  const after = proposals.add(name, proposal.text);
  const before = proposal.exists ? target : proposals.add(name, "");
  try {
    await vscode.commands.executeCommand("vscode.diff", before, after, `${label}: ${name} (preview)`, { preview: true });
    const what = label.includes(name) ? `${label}?` : `${label} in ${name}?`;
    const question = detail ? `${what} ${detail.startsWith(`${name}: `) ? detail.slice(name.length + 2) : detail}` : what;
    const choice = await vscode.window.showInformationMessage(question, "Apply", "Discard");
    await closeDiff(after);
    if (choice !== "Apply") {
      return false;
    }
    const edit = await client.protocol2CodeConverter.asWorkspaceEdit(
      proposal.edit as Parameters<typeof client.protocol2CodeConverter.asWorkspaceEdit>[0]);
    const applied = edit !== undefined && await vscode.workspace.applyEdit(edit);
    if (!applied) {
      void vscode.window.showWarningMessage(`Ryzanstein: ${name} changed since the refactor was computed; nothing was applied.`);
    }
    return applied;
  } finally {
    proposals.drop(after);
    if (before !== target) {
      proposals.drop(before);
    }
  }
}

async function closeDiff(modified: vscode.Uri): Promise<void> {
  const tabs = vscode.window.tabGroups.all.flatMap((g) => g.tabs).filter((tab) =>
    tab.input instanceof vscode.TabInputTextDiff && tab.input.modified.toString() === modified.toString());
  if (tabs.length) {
    await vscode.window.tabGroups.close(tabs);
  }
}
