import assert from "node:assert/strict";
import { test } from "node:test";

import { HealthCheck, HealthMonitor, type HealthPolicy } from "../src/common/health";

const POLICY: HealthPolicy = { intervalMs: 30_000, timeoutMs: 10_000, tickMs: 2_000, suspendMs: 15_000 };

/** Ticks the check every 2 s from `from` to `to` (ms); the actions other than "wait", with their times. */
function run(check: HealthCheck, from: number, to: number): Array<[number, string]> {
  const out: Array<[number, string]> = [];
  for (let t = from; t <= to; t += POLICY.tickMs) {
    const action = check.tick(t);
    if (action !== "wait") {
      out.push([t, action]);
    }
  }
  return out;
}

test("pings only after the interval without an answer", () => {
  const c = new HealthCheck(0, POLICY);
  assert.deepEqual(run(c, 2_000, 28_000), []);
  assert.equal(c.tick(30_000), "ping");
});

test("answers to other requests postpone the ping: a busy sidecar is never pinged", () => {
  const c = new HealthCheck(0, POLICY);
  for (let t = 2_000; t <= 120_000; t += 2_000) {
    if (t % 20_000 === 0) {
      c.answered(t);
    }
    assert.equal(c.tick(t), "wait", `at ${t}`);
  }
});

test("an answered ping: the next one an interval later", () => {
  const c = new HealthCheck(0, POLICY);
  assert.deepEqual(run(c, 2_000, 30_000), [[30_000, "ping"]]);
  c.pinged(30_000);
  c.answered(30_050);
  assert.deepEqual(run(c, 32_000, 58_000), []);
  assert.equal(c.tick(60_050 + 1_950), "ping");
});

test("a ping unanswered past the deadline: restart, not before", () => {
  const c = new HealthCheck(0, POLICY);
  assert.equal(run(c, 2_000, 30_000).length, 1);
  c.pinged(30_000);
  assert.deepEqual(run(c, 32_000, 38_000), []); // no second ping while one is out
  assert.equal(c.tick(40_000), "restart");
});

test("a machine that slept is not a deaf sidecar", () => {
  const c = new HealthCheck(0, POLICY);
  run(c, 2_000, 30_000);
  c.pinged(30_000);
  assert.equal(c.tick(32_000), "wait");
  assert.equal(c.tick(3_600_000), "wait"); // an hour later: the gap says the process was suspended
  assert.deepEqual(run(c, 3_602_000, 3_628_000), []);
  assert.equal(c.tick(3_630_000), "ping");
});

test("the monitor kills a sidecar that does not answer, once", async () => {
  let now = 0;
  const pings: string[] = [];
  const deaf: string[] = [];
  const m = new HealthMonitor(
    () => {
      pings.push(`at ${now}`);
      return new Promise(() => undefined); // never answered
    },
    (why) => deaf.push(why),
    () => now,
    POLICY,
  );
  for (now = 2_000; now <= 60_000; now += 2_000) {
    m.tick();
  }
  assert.deepEqual(pings, ["at 30000"]);
  assert.equal(deaf.length, 1);
  assert.match(deaf[0], /did not answer ryzanstein\/ping within 10 s/);
  m.dispose();
});

test("the monitor leaves a sidecar that answers (with a result or an error) alone", async () => {
  let now = 0;
  let answers = 0;
  const deaf: string[] = [];
  const m = new HealthMonitor(
    () => (answers++ % 2 === 0 ? Promise.resolve({ state: "ready" }) : Promise.reject(new Error("-32601"))),
    (why) => deaf.push(why),
    () => now,
    POLICY,
  );
  for (now = 2_000; now <= 300_000; now += 2_000) {
    m.tick();
    await new Promise((resolve) => setImmediate(resolve)); // the ping's answer arrives
  }
  assert.ok(answers >= 8, `${answers} pings`);
  assert.deepEqual(deaf, []);
  m.dispose();
});
