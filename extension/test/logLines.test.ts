import assert from "node:assert/strict";
import { test } from "node:test";

import { type Level, LogLines } from "../src/common/logLines";

test("levels come from the sidecar's own lines; continuation lines keep the level before them", () => {
  const got: Array<[Level, string]> = [];
  const l = new LogLines((level, msg) => got.push([level, msg]));
  l.push("2026-11-27 15:00:16,333 ryzanstein INFO ryzanstein 0.1.0 starting (stdio)\n2026-11-27 15:00:17,001 ryz");
  l.push("anstein.index WARNING slow disk\n2026-11-27 15:00:18,000 ryzanstein ERROR completion failed\n");
  l.push("Traceback (most recent call last):\n  File \"x.py\", line 1\n\n");
  l.push("a line that never ended");
  l.flush();
  assert.deepEqual(got, [
    ["info", "ryzanstein: ryzanstein 0.1.0 starting (stdio)"],
    ["warn", "ryzanstein.index: slow disk"],
    ["error", "ryzanstein: completion failed"],
    ["error", "Traceback (most recent call last):"],
    ["error", "  File \"x.py\", line 1"],
    ["error", "a line that never ended"],
  ]);
});
