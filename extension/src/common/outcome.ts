// Why a completion request ended as it did: the sidecar's `ryzanstein/completion` notification (sent before its
// answer), shown in the status tooltip and, when the user asked explicitly (Alt+\) and nothing came, in the status
// bar itself. The reasons and their messages are the sidecar's (pyserver/completion/outcome.py).

/** What the sidecar sends; `at` is when the extension got it. */
export interface CompletionOutcome {
  reason: string;
  message: string;
  uri: string;
  invoked: boolean;
  confidence?: number;
  threshold?: number;
  at?: number;
}

const SHOWN = new Set(["shown", "forwarded"]);
/** A latency older than this says nothing about the next suggestion. */
export const LATENCY_FRESH_MS = 5 * 60_000;

export function isShown(o: CompletionOutcome | undefined): boolean {
  return !!o && SHOWN.has(o.reason);
}

/** The status bar's answer to an explicit request that came back empty (undefined: it was not empty). */
export function noSuggestionText(o: CompletionOutcome): string | undefined {
  return isShown(o) ? undefined : `no suggestion: ${o.message}`;
}

function ago(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  return s < 90 ? `${s} s ago` : `${Math.round(s / 60)} min ago`;
}

/** The tooltip's line about the last request. */
export function outcomeLine(o: CompletionOutcome | undefined, now = Date.now()): string {
  if (!o) {
    return "Last request: none yet";
  }
  return `Last request${o.at !== undefined ? ` (${ago(now - o.at)})` : ""}: ${o.message}`;
}

/** " · 312 ms" after the model's name: only when the last request showed a suggestion, not long ago. */
export function latencyText(latencyMs: number | null | undefined, last: CompletionOutcome | undefined,
  now = Date.now()): string {
  if (latencyMs == null || !isShown(last) || last?.at === undefined || now - last.at > LATENCY_FRESH_MS) {
    return "";
  }
  return ` · ${Math.round(latencyMs)} ms`;
}
