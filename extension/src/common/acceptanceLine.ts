// The status tooltip's line on acceptance (kept apart from status.ts so tests run without VS Code).

import type { SidecarStatus } from "./status";

/** Counted on this machine only. */
export function acceptanceLine(a: SidecarStatus["acceptance"]): string | undefined {
  if (!a || !a.shown) {
    return undefined;
  }
  const pct = (x: number | null) => `${Math.round((x ?? 0) * 100)}%`;
  return `Accepted: ${a.accepted} of ${a.shown} suggestions (${pct(a.acceptance_rate)}), partly: ${pct(a.partial_rate)}`;
}
