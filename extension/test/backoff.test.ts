import assert from "node:assert/strict";
import { test } from "node:test";

import { RestartBackoff } from "../src/common/backoff";

test("delays double and are capped", () => {
  const b = new RestartBackoff({ baseMs: 100, maxMs: 500, maxCrashes: 10, windowMs: 60_000 });
  const delays = [0, 1, 2, 3, 4].map((i) => b.onCrash(i * 10));
  assert.deepEqual(delays.map((d) => (d.restart ? d.delayMs : -1)), [100, 200, 400, 500, 500]);
});

test("gives up after too many crashes in the window, forgives after it", () => {
  const b = new RestartBackoff({ baseMs: 100, maxMs: 1000, maxCrashes: 2, windowMs: 1000 });
  assert.equal(b.onCrash(0).restart, true);
  assert.equal(b.onCrash(10).restart, true);
  const third = b.onCrash(20);
  assert.equal(third.restart, false);
  assert.match(third.restart ? "" : third.reason, /crashed 3 times/);
  assert.deepEqual(b.onCrash(5000), { restart: true, delayMs: 100 }); // the old crashes left the window
});

test("a manual restart resets", () => {
  const b = new RestartBackoff({ baseMs: 100, maxMs: 1000, maxCrashes: 1, windowMs: 1000 });
  b.onCrash(0);
  b.reset();
  assert.deepEqual(b.onCrash(1), { restart: true, delayMs: 100 });
});
