// When to restart a crashed sidecar: exponential back-off that forgives after a quiet spell, and a limit after
// which the user gets one actionable message instead of a restart loop.

export interface BackoffPolicy {
  baseMs: number;
  maxMs: number;
  maxCrashes: number; // within windowMs: more than this and we stop restarting
  windowMs: number;
}

export const DEFAULT_POLICY: BackoffPolicy = { baseMs: 500, maxMs: 30_000, maxCrashes: 5, windowMs: 3 * 60_000 };

export type Decision = { restart: true; delayMs: number } | { restart: false; reason: string };

export class RestartBackoff {
  private crashes: number[] = [];

  constructor(private readonly policy: BackoffPolicy = DEFAULT_POLICY) {}

  /** Records a crash at `now` (ms) and says whether and when to restart. */
  onCrash(now: number): Decision {
    this.crashes = this.crashes.filter((t) => now - t < this.policy.windowMs);
    this.crashes.push(now);
    const n = this.crashes.length;
    if (n > this.policy.maxCrashes) {
      return {
        restart: false,
        reason: `the sidecar crashed ${n} times in ${Math.round(this.policy.windowMs / 60_000)} minutes`,
      };
    }
    return { restart: true, delayMs: Math.min(this.policy.maxMs, this.policy.baseMs * 2 ** (n - 1)) };
  }

  /** A manual restart starts afresh. */
  reset(): void {
    this.crashes = [];
  }
}
