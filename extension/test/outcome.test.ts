import assert from "node:assert/strict";
import { test } from "node:test";

import { latencyText, noSuggestionText, outcomeLine } from "../src/common/outcome";
import { clientSettings, whyNoSuggestion } from "../src/common/settings";

const gated = { reason: "gated", message: "held back: confidence 0.21 below the threshold 0.35", uri: "file:///a.py",
  invoked: true, confidence: 0.21, threshold: 0.35 };

test("the manual trigger's answer says why nothing came", () => {
  assert.equal(noSuggestionText(gated), "no suggestion: held back: confidence 0.21 below the threshold 0.35");
  assert.equal(noSuggestionText({ ...gated, reason: "shown", message: "shown" }), undefined);
});

test("the tooltip line has the reason and when it came", () => {
  const at = new Date(2026, 0, 1, 12, 3, 4).getTime();
  assert.equal(outcomeLine({ ...gated, at }, at + 5_000), "Last request (5 s ago): held back: confidence 0.21 below the threshold 0.35");
  assert.equal(outcomeLine(undefined, at), "Last request: none yet");
});

test("a latency is shown only for a suggestion that was shown, and only while it is recent", () => {
  const now = 1_000_000;
  assert.equal(latencyText(312.4, { ...gated, reason: "shown", message: "shown", at: now - 1000 }, now), " · 312 ms");
  assert.equal(latencyText(312.4, { ...gated, at: now - 1000 }, now), "");
  assert.equal(latencyText(312.4, { ...gated, reason: "shown", message: "shown", at: now - 20 * 60_000 }, now), "");
});

test("client-side reasons: snoozed, off, language, manual typing", () => {
  const s = clientSettings(() => undefined);
  assert.equal(whyNoSuggestion(s, "python", false, 0), undefined);
  assert.match(whyNoSuggestion(s, "python", false, 12) ?? "", /snoozed.*12/);
  assert.match(whyNoSuggestion({ ...s, enable: false }, "python", false, 0) ?? "", /off/);
  assert.match(whyNoSuggestion(s, "markdown", false, 0) ?? "", /markdown/);
  assert.match(whyNoSuggestion({ ...s, trigger: "manual" }, "python", true, 0) ?? "", /manual/);
});
