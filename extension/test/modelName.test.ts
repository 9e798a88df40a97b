import assert from "node:assert/strict";
import { test } from "node:test";

import { shortModelName } from "../src/common/modelName";

test("model names in the status bar are short", () => {
  assert.equal(shortModelName("ryzanstein-code.gguf"), "ryzanstein-code");
  assert.equal(shortModelName("falcon3-10b-instruct-1.58bit"), "falcon3-10b-instruct-1.…");
  assert.equal(shortModelName("ggml-model-i2_s.GGUF"), "ggml-model-i2_s");
});
