// The status bar item: state, model and last latency from the sidecar's ryzanstein/status notifications.

import * as vscode from "vscode";

import { acceptanceLine } from "./acceptanceLine";
import { shortModelName } from "./modelName";
import { type CompletionOutcome, latencyText, outcomeLine } from "./outcome";

export interface SidecarStatus {
  state: string;
  model?: string | null;
  tier?: string | null;
  last_latency_ms?: number | null;
  tokens_per_s?: number | null;
  error?: string | null;
  acceptance?: { shown: number; accepted: number; acceptance_rate: number | null; partial_rate: number | null };
  /** Restricted Mode (an untrusted folder): the extension stays off and says why. */
  restricted?: string;
}

const ICONS: Record<string, string> = {
  loading: "$(loading~spin)",
  ready: "$(sparkle)",
  busy: "$(sync~spin)",
  error: "$(error)",
  off: "$(circle-slash)",
  snoozed: "$(bell-slash)",
  restricted: "$(shield)",
};
/** How long the status bar shows why an explicit request (Alt+\) brought nothing. */
const FLASH_MS = 8000;

export class StatusItem implements vscode.Disposable {
  private readonly item = vscode.window.createStatusBarItem(vscode.StatusBarAlignment.Right, 100);
  last: SidecarStatus = { state: "loading" };
  lastOutcome: CompletionOutcome | undefined;
  private enabled = true;
  private snoozedMinutes = 0;
  private flashUntil = 0;
  private flashTimer: ReturnType<typeof setTimeout> | undefined;

  constructor() {
    this.item.command = "ryzanstein.showStatus";
    this.update({ state: "loading" });
    this.item.show();
  }

  update(s: SidecarStatus, enabled = true, snoozedMinutes = 0): void {
    this.last = s;
    this.enabled = enabled;
    this.snoozedMinutes = snoozedMinutes;
    if (s.restricted) {
      this.item.text = `${ICONS.restricted} Ryzanstein: Restricted Mode`;
      this.item.tooltip = s.restricted;
      this.item.command = "workbench.trust.manage";
      return;
    }
    this.item.command = "ryzanstein.showStatus";
    const state = !enabled ? "off" : snoozedMinutes > 0 ? "snoozed" : s.state;
    const latency = latencyText(s.last_latency_ms, this.lastOutcome);
    const model = s.model ? ` · ${shortModelName(s.model)}` : "";
    if (Date.now() >= this.flashUntil) {
      this.item.text = `${ICONS[state] ?? "$(question)"} Ryzanstein${state === "ready" ? model + latency : `: ${state}`}`;
    }
    const lines = [`State: ${state}`, `Model: ${s.model ?? "none"} (${s.tier ?? "?"})`, outcomeLine(this.lastOutcome)];
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

  /** A completion request ended (the sidecar's ryzanstein/completion notification). */
  outcome(o: CompletionOutcome): void {
    this.lastOutcome = { ...o, at: o.at ?? Date.now() };
    this.update(this.last, this.enabled, this.snoozedMinutes);
  }

  /** Says `text` in the status bar for a few seconds (why an explicit request brought nothing). */
  flash(text: string): void {
    this.flashUntil = Date.now() + FLASH_MS;
    this.item.text = `$(info) Ryzanstein: ${text}`;
    clearTimeout(this.flashTimer);
    this.flashTimer = setTimeout(() => {
      this.flashUntil = 0;
      this.update(this.last, this.enabled, this.snoozedMinutes);
    }, FLASH_MS);
  }

  dispose(): void {
    clearTimeout(this.flashTimer);
    this.item.dispose();
  }
}
