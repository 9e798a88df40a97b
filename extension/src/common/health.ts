// The sidecar's health check. A sidecar that stopped reading its stdin is alive but deaf, and the client only
// restarts a dead one: when the sidecar has answered nothing for a while, it is sent a cheap request
// (ryzanstein/ping, answered on its event loop); no answer within the deadline and it is killed, and restarted
// with the usual back-off.

export const PING = "ryzanstein/ping";

export interface HealthPolicy {
  intervalMs: number; // ping after this long without an answer to anything
  timeoutMs: number; // a ping unanswered this long: the sidecar is deaf
  tickMs: number; // how often the monitor looks
  suspendMs: number; // a gap this long between looks: the machine slept; start timing afresh
}

export const DEFAULT_HEALTH: HealthPolicy = { intervalMs: 30_000, timeoutMs: 10_000, tickMs: 2_000, suspendMs: 15_000 };

export type HealthAction = "wait" | "ping" | "restart";

/** The decision, without timers: what to do at `now` (ms), given what the sidecar answered and when. */
export class HealthCheck {
  private lastAnswer: number;
  private lastTick: number;
  private pingSentAt: number | undefined;

  constructor(
    now: number,
    private readonly policy: HealthPolicy = DEFAULT_HEALTH,
  ) {
    this.lastAnswer = now;
    this.lastTick = now;
  }

  /** The sidecar answered something (a ping, a completion, a command): it hears. */
  answered(now: number): void {
    this.lastAnswer = Math.max(this.lastAnswer, now);
    this.pingSentAt = undefined;
  }

  pinged(now: number): void {
    this.pingSentAt = now;
  }

  tick(now: number): HealthAction {
    const gap = now - this.lastTick;
    this.lastTick = now;
    if (gap >= this.policy.suspendMs) {
      // Asleep (the machine, or this process): the sidecar was too; nothing it failed to answer counts.
      this.lastAnswer = now;
      this.pingSentAt = undefined;
      return "wait";
    }
    if (this.pingSentAt !== undefined) {
      return now - this.pingSentAt >= this.policy.timeoutMs ? "restart" : "wait";
    }
    return now - this.lastAnswer >= this.policy.intervalMs ? "ping" : "wait";
  }
}

/** The check on a timer: pings through `ping`, and calls `onDeaf` once when a ping goes unanswered. */
export class HealthMonitor {
  private readonly check: HealthCheck;
  private timer: ReturnType<typeof setInterval> | undefined;
  private done = false;

  constructor(
    private readonly ping: () => Promise<unknown>,
    private readonly onDeaf: (why: string) => void,
    private readonly now: () => number = Date.now,
    private readonly policy: HealthPolicy = DEFAULT_HEALTH,
  ) {
    this.check = new HealthCheck(now(), policy);
  }

  start(): this {
    this.timer = setInterval(() => this.tick(), this.policy.tickMs);
    this.timer.unref?.();
    return this;
  }

  /** An answer to any request: no ping is needed for a while. */
  answered(): void {
    this.check.answered(this.now());
  }

  tick(): void {
    if (this.done) {
      return;
    }
    const action = this.check.tick(this.now());
    if (action === "ping") {
      this.check.pinged(this.now());
      // An error answer is an answer too: the sidecar read the request.
      this.ping().then(
        () => this.answered(),
        () => this.answered(),
      );
    } else if (action === "restart") {
      this.dispose();
      this.onDeaf(`the sidecar did not answer ${PING} within ${Math.round(this.policy.timeoutMs / 1000)} s`);
    }
  }

  dispose(): void {
    this.done = true;
    if (this.timer !== undefined) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }
}
