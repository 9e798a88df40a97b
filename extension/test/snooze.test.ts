import assert from "node:assert/strict";
import { test } from "node:test";

import { Snooze } from "../src/common/snooze";
import { acceptanceLine } from "../src/common/acceptanceLine";

function memento() {
  const m = new Map<string, unknown>();
  return {
    get: <T>(k: string, d?: T) => (m.has(k) ? (m.get(k) as T) : d) as T,
    update: async (k: string, v: unknown) => void m.set(k, v),
  };
}

test("snooze lasts 30 minutes, counts down, and resumes", async () => {
  let now = 1_000_000;
  const s = new Snooze(memento(), () => now);
  assert.equal(s.active(), false);
  await s.start();
  assert.equal(s.active(), true);
  assert.equal(s.minutesLeft(), 30);
  now += 29 * 60_000 + 1;
  assert.equal(s.minutesLeft(), 1);
  now += 60_000;
  assert.equal(s.active(), false);
  await s.start();
  await s.stop();
  assert.equal(s.active(), false);
});

test("the tooltip's acceptance line", () => {
  assert.equal(acceptanceLine(undefined), undefined);
  assert.equal(acceptanceLine({ shown: 0, accepted: 0, acceptance_rate: null, partial_rate: null }), undefined);
  assert.equal(acceptanceLine({ shown: 8, accepted: 2, acceptance_rate: 0.25, partial_rate: 0.125 }),
    "Accepted: 2 of 8 suggestions (25%), partly: 13%");
});
