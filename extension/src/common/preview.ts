// A refactor's edit, previewed before anything is written: VS Code's diff editor between the file as it is and as
// the edit would leave it (a read-only document of ours), with Apply / Discard in the diff's title bar for as long
// as it is open (a notification asks too, but VS Code hides notifications after a few seconds); closing the diff
// discards. Applying goes through workspace.applyEdit with the document versions the sidecar computed on, so an
// edit to a document that changed meanwhile is refused by VS Code itself.

import * as vscode from "vscode";
import type { LanguageClient } from "vscode-languageclient/node";

/** What the sidecar answers a refactor asked for with `preview: true`. */
export interface Proposal {
  edit: unknown; // an LSP WorkspaceEdit
  uri: string; // the file it changes (or creates)
  text: string; // that file's text once applied
  exists: boolean; // false: the edit creates the file
}

export type Choice = "Apply" | "Discard";
/** The context key that shows the diff's Apply / Discard title buttons (package.json, menus.editor/title). */
export const PREVIEW_OPEN = "ryzanstein.previewOpen";

/** Read-only documents holding proposed file texts (scheme `ryzanstein-proposal`), and the open preview's choice. */
export class Proposals implements vscode.TextDocumentContentProvider {
  static readonly scheme = "ryzanstein-proposal";
  private readonly texts = new Map<string, string>();
  private count = 0;
  /** The open preview's answer (the title buttons and the palette's Apply / Discard commands call it). */
  choose: ((choice: Choice) => void) | undefined;

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
    proposals.choose?.("Discard"); // (one preview at a time: a new one discards the one before)
    await vscode.commands.executeCommand("vscode.diff", before, after, `${label}: ${name} (preview)`, { preview: true });
    const what = label.includes(name) ? `${label}?` : `${label} in ${name}?`;
    const question = detail ? `${what} ${detail.startsWith(`${name}: `) ? detail.slice(name.length + 2) : detail}` : what;
    const choice = await ask(proposals, after, question);
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

/** Apply or Discard: from the notification, the diff's title buttons or the palette, whichever comes first; the diff
 * closed by the user is Discard. The notification hidden by VS Code after a while answers nothing: the title
 * buttons stay until the diff is closed. */
function ask(proposals: Proposals, after: vscode.Uri, question: string): Promise<Choice> {
  return new Promise<Choice>((resolve) => {
    const closed = vscode.window.tabGroups.onDidChangeTabs((e) => {
      if (e.closed.some((tab) => isDiffOf(tab, after))) {
        done("Discard");
      }
    });
    const done = (choice: Choice): void => {
      if (proposals.choose !== done) {
        return;
      }
      proposals.choose = undefined;
      closed.dispose();
      void vscode.commands.executeCommand("setContext", PREVIEW_OPEN, false);
      resolve(choice);
    };
    proposals.choose = done;
    void vscode.commands.executeCommand("setContext", PREVIEW_OPEN, true);
    void vscode.window.showInformationMessage(`${question} (Apply / Discard stay in the diff's title bar.)`, "Apply",
      "Discard").then((pick) => {
      if (pick === "Apply" || pick === "Discard") {
        done(pick);
      }
    });
  });
}

function isDiffOf(tab: vscode.Tab, modified: vscode.Uri): boolean {
  return tab.input instanceof vscode.TabInputTextDiff && tab.input.modified.toString() === modified.toString();
}

async function closeDiff(modified: vscode.Uri): Promise<void> {
  const tabs = vscode.window.tabGroups.all.flatMap((g) => g.tabs).filter((tab) => isDiffOf(tab, modified));
  if (tabs.length) {
    await vscode.window.tabGroups.close(tabs);
  }
}
