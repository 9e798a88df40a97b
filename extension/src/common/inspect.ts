// "Ryzanstein: Inspect Model" and "Inspect Index": the sidecar reads the served model's weights or the workspace
// index and answers with a self-contained HTML report (inline SVG figures, no script), shown here in a webview that
// runs no script and loads nothing: scripts off, no local resources, and a strict content security policy put in
// front of whatever the page says. Everything VS Code provides is injected, so this is tested without VS Code.

import type * as vscodeApi from "vscode";

/** What the page may do: nothing but its own inline style and inline images. */
export const CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:";

/** The webview's options: no scripts, no forms, no files from disk. */
export const PANEL_OPTIONS = { enableScripts: false, enableForms: false, localResourceRoots: [] } as const;

export type Which = "model" | "index";

const COMMAND: Record<Which, string> = {
  model: "ryzanstein.sidecar.inspectModel",
  index: "ryzanstein.sidecar.inspectIndex",
};

interface Page {
  title: string;
  html: string;
}

/** The part of the language client used here. */
export interface CommandClient {
  sendRequest(method: string, params: unknown): Promise<unknown>;
}

export interface InspectUi {
  /** Opens a webview panel showing html (with PANEL_OPTIONS). */
  show(title: string, html: string): void;
  /** Runs the task under a progress notification. */
  progress<T>(title: string, task: () => Promise<T>): Promise<T>;
  warn(message: string): void;
}

/** The page with the policy as the first element of its head (a page without a head gets one). */
export function withCsp(html: string): string {
  const meta = `<meta http-equiv="Content-Security-Policy" content="${CSP}">`;
  const head = /<head[^>]*>/i.exec(html);
  if (head) {
    const at = head.index + head[0].length;
    return html.slice(0, at) + meta + html.slice(at);
  }
  return `<!DOCTYPE html><html><head>${meta}</head><body>${html}</body></html>`;
}

/** The pages of a sidecar answer (inspectIndex gives one per workspace folder), or why there are none. */
export function pagesOf(result: unknown, which: Which): Page[] | string {
  const r = (result ?? {}) as Record<string, unknown>;
  const fallback = which === "model" ? "Inspect Model" : "Inspect Index";
  const pages: Page[] = [];
  const listed = Array.isArray(r.pages) ? (r.pages as Record<string, unknown>[]) : [r];
  for (const p of listed) {
    if (typeof p.html === "string" && p.html) {
      pages.push({ title: typeof p.title === "string" ? p.title : fallback, html: p.html });
    }
  }
  if (pages.length) {
    return pages;
  }
  return typeof r.reason === "string" ? r.reason : "the sidecar returned no report";
}

export async function runInspection(ui: InspectUi, client: CommandClient | undefined, which: Which): Promise<void> {
  if (!client) {
    ui.warn("Ryzanstein: the sidecar is not running.");
    return;
  }
  const what = which === "model" ? "the model's weights" : "the workspace index";
  const result = await ui.progress(`Ryzanstein: reading ${what}…`, () =>
    client.sendRequest("workspace/executeCommand", { command: COMMAND[which], arguments: [] }));
  const pages = pagesOf(result, which);
  if (typeof pages === "string") {
    ui.warn(`Ryzanstein: ${pages}`);
    return;
  }
  for (const p of pages) {
    ui.show(p.title, withCsp(p.html));
  }
}

type Vscode = Pick<typeof vscodeApi, "window" | "ViewColumn" | "ProgressLocation">;

/** The UI in VS Code: a webview panel per page, a notification while the sidecar reads. */
export function vscodeInspectUi(vscode: Vscode): InspectUi {
  return {
    show: (title, html) => {
      const panel = vscode.window.createWebviewPanel("ryzanstein.inspect", title, vscode.ViewColumn.Active,
        { ...PANEL_OPTIONS, localResourceRoots: [] });
      panel.webview.html = html;
    },
    progress: (title, task) => Promise.resolve(
      vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title }, task)),
    warn: (message) => void vscode.window.showWarningMessage(message),
  };
}
