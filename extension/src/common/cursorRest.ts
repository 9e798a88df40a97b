// Tells the sidecar where the cursor rests, so that it prefills that position's prompt into the document's KV
// cache before the next keystroke asks for a suggestion (the sidecar's warm-up, pyserver/server/warmup.py).
import * as vscode from "vscode";

export const CURSOR_REST = "ryzanstein/cursorRest";
export const REST_MS = 300;

export interface RestPosition {
  uri: string;
  position: { line: number; character: number };
}

export function watchCursorRest(
  send: (rest: RestPosition) => void,
  wanted: (doc: vscode.TextDocument) => boolean,
  restMs: number = REST_MS,
): vscode.Disposable {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const schedule = (editor: vscode.TextEditor | undefined): void => {
    if (timer !== undefined) {
      clearTimeout(timer);
      timer = undefined;
    }
    if (editor === undefined || !["file", "untitled"].includes(editor.document.uri.scheme)) {
      return;
    }
    timer = setTimeout(() => {
      timer = undefined;
      if (wanted(editor.document)) {
        const p = editor.selection.active;
        send({ uri: editor.document.uri.toString(), position: { line: p.line, character: p.character } });
      }
    }, restMs);
  };
  const subscriptions = [
    vscode.window.onDidChangeTextEditorSelection((e) => schedule(e.textEditor)),
    vscode.window.onDidChangeActiveTextEditor((e) => schedule(e)),
  ];
  schedule(vscode.window.activeTextEditor);
  return {
    dispose: () => {
      if (timer !== undefined) {
        clearTimeout(timer);
      }
      subscriptions.forEach((s) => s.dispose());
    },
  };
}
