// The status bar item: state, model and last latency from the sidecar's ryzanstein/status notifications.

import * as vscode from "vscode";

import { acceptanceLine } from "./acceptanceLine";
import { shortModelName } from "./modelName";

export interface SidecarStatus {
  state: string;
  model?: string | null;
  tier?: string | null;
  last_latency_ms?: number | null;
  tokens_per_s?: number | null;
  error?: string | null;
  acceptance?: { shown: number; accepted: number; acceptance_rate: number | null; partial_rate: number | null };
}

const ICONS: Record<string, string> = {
  loading: "$(loading~spin)",
  ready: "$(sparkle)",
  busy: "$(sync~spin)",
  error: "$(error)",
  off: "$(circle-slash)",
  snoozed: "$(bell-slash)",
};

export class StatusItem implements vscode.Disposable {
  private readonly item = vscode.window.createStatusBarItem(vscode.StatusBarAlignment.Right, 100);
  last: SidecarStatus = { state: "loading" };

  constructor() {
    this.item.command = "ryzanstein.showStatus";
    this.update({ state: "loading" });
    this.item.show();
  }

  update(s: SidecarStatus, enabled = true, snoozedMinutes = 0): void {
    this.last = s;
    const state = !enabled ? "off" : snoozedMinutes > 0 ? "snoozed" : s.state;
    const latency = s.last_latency_ms != null ? ` · ${Math.round(s.last_latency_ms)} ms` : "";
    const model = s.model ? ` · ${shortModelName(s.model)}` : "";
    this.item.text = `${ICONS[state] ?? "$(question)"} Ryzanstein${state === "ready" ? model + latency : `: ${state}`}`;
    const lines = [`State: ${state}`, `Model: ${s.model ?? "none"} (${s.tier ?? "?"})`];
    if (s.tokens_per_s != null) {
      lines.push(`Speed: ${s.tokens_per_s} tokens/s`);
    }
    if (snoozedMinutes > 0) {
      lines.push(`Snoozed for ${snoozedMinutes} more minutes`);
    }
    const acc = acceptanceLine(s.acceptance);
    if (acc) {
      lines.push(acc);
    }
    if (s.error) {
      lines.push(`Error: ${s.error}`);
    }
    this.item.tooltip = lines.join("\n");
  }

  dispose(): void {
    this.item.dispose();
  }
}
