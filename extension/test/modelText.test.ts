import assert from "node:assert/strict";
import { test } from "node:test";

import { type ModelRow, describeModel, modelStatus, progressText, recommendedAbsent } from "../src/common/modelText";

const row = (over: Partial<ModelRow>): ModelRow => ({
  id: "bitnet-b1.58-2b4t", tier: "3B", name: "BitNet b1.58 2B4T", approx_download_bytes: 1_177_681_920,
  resident_bytes: 1_822_064_640, predicted_tokens_per_s: 9.74, fits_ram: true, fast_enough_for_completions: false,
  present: false, path: null, ...over,
});

test("a model's line says tier, download, memory and speed here", () => {
  assert.equal(describeModel(row({})), "3B · 1.2 GB download · needs 1.8 GB RAM · ~9.7 tokens/s here");
  assert.equal(describeModel(row({ tier: "shipped", resident_bytes: 7_641_497, predicted_tokens_per_s: 3892.2 })),
    "shipped · needs 8 MB RAM · ~3892 tokens/s here");
  assert.match(describeModel(row({ fits_ram: false })), /more than this machine can spare/);
});

test("status: present, serving, recommended, too slow for completions", () => {
  assert.equal(modelStatus(row({}), "ryzanstein-code.gguf", null),
    "not downloaded · too slow here for inline completions: refactors and explanations");
  const here = row({ present: true, path: "/m/ggml-model-i2_s.gguf", fast_enough_for_completions: true });
  assert.equal(modelStatus(here, "ggml-model-i2_s.gguf", "bitnet-b1.58-2b4t"),
    "here · serving now · recommended for this machine");
  // too slow: by how much, and the closest model that fits
  const slow = row({ predicted_completion_ms: 4616, over_budget: 7.69, closest_fit: "ryzanstein-code" });
  assert.equal(modelStatus(slow, null, null), "not downloaded · too slow here for inline completions " +
    "(~4616 ms a completion, 7.7x the budget; the closest that fits: ryzanstein-code): refactors and explanations");
});

test("download progress in MB and time left", () => {
  const job = { id: "x", state: "running" as const, done: 512e6, total: 1.2e9, bytes_per_s: 5e6, eta_s: 138,
    message: "", path: null };
  assert.equal(progressText(job), "512 MB of 1.2 GB · 2 min left");
  assert.equal(progressText({ ...job, eta_s: 20 }), "512 MB of 1.2 GB · 20 s left");
  assert.equal(progressText({ ...job, state: "done", done: 1.2e9 }), "1.2 GB of 1.2 GB");
});

test("the first-run notice offers the recommended tier only when it is absent", () => {
  const table = { tiers: { "3B": [row({})] }, would_choose: { tier: "3B", model: "bitnet-b1.58-2b4t", use_now: "ryzanstein-code" } };
  assert.equal(recommendedAbsent(table)?.id, "bitnet-b1.58-2b4t");
  assert.equal(recommendedAbsent({ ...table, tiers: { "3B": [row({ present: true })] } }), undefined);
  assert.equal(recommendedAbsent({ ...table, would_choose: { tier: "shipped", model: "ryzanstein-code", use_now: null } }), undefined);
});

test("the first-run notice offers the first download (the smallest that serves completions) before the tier's model", () => {
  const b17 = row({ id: "ternary-bonsai-1.7b", name: "Ternary-Bonsai 1.7B (PrismML)" });
  const b8 = row({ id: "ternary-bonsai-8b", tier: "13B", name: "Ternary-Bonsai 8B (PrismML)" });
  const table = { tiers: { "3B": [b17], "13B": [b8] }, would_choose: { tier: "13B", model: "ternary-bonsai-8b",
    use_now: "ryzanstein-code", first_download: "ternary-bonsai-1.7b" } };
  assert.equal(recommendedAbsent(table)?.id, "ternary-bonsai-1.7b");
  assert.equal(recommendedAbsent({ ...table, would_choose: { ...table.would_choose, first_download: null } })?.id,
    "ternary-bonsai-8b");
});
