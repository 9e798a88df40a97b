// Snooze: inline suggestions off for a while (status-bar menu), remembered across reloads.

import type * as vscode from "vscode";

export const SNOOZE_MINUTES = 30;
const KEY = "ryzanstein.snoozedUntil";

export class Snooze {
  constructor(private readonly state: Pick<vscode.Memento, "get" | "update">, private readonly now = () => Date.now()) {}

  get until(): number {
    return this.state.get<number>(KEY, 0);
  }

  active(): boolean {
    return this.until > this.now();
  }

  minutesLeft(): number {
    return Math.max(0, Math.ceil((this.until - this.now()) / 60_000));
  }

  async start(minutes = SNOOZE_MINUTES): Promise<void> {
    await this.state.update(KEY, this.now() + minutes * 60_000);
  }

  async stop(): Promise<void> {
    await this.state.update(KEY, 0);
  }
}
