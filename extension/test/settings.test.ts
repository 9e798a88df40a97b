import assert from "node:assert/strict";
import { test } from "node:test";

import { clientSettings, needsRestart, serverSettings } from "../src/common/settings";

test("defaults when nothing is set", () => {
  const none = () => undefined;
  assert.deepEqual(clientSettings(none), { enable: true, debounceMs: 120, pythonPath: "", tier: "auto" });
  assert.deepEqual(serverSettings(none), {
    enable: true, maxLines: 8, maxTokens: 64, modelPath: "", tier: "auto", threads: 0, unloadIdleMinutes: 15,
    modelFolders: [], indexInclude: [], indexExclude: [],
  });
});

test("values map to the sidecar's names; bad types fall back", () => {
  const values: Record<string, unknown> = {
    enable: false, maxLines: 3, maxTokens: "lots", modelPath: "/m.gguf", threads: -2, "index.exclude": ["dist/**", 4],
  };
  const s = serverSettings((k) => values[k]);
  assert.equal(s.enable, false);
  assert.equal(s.maxLines, 3);
  assert.equal(s.maxTokens, 64);
  assert.equal(s.modelPath, "/m.gguf");
  assert.equal(s.threads, 0);
  assert.deepEqual(s.indexExclude, ["dist/**"]);
  assert.equal(serverSettings((k) => (k === "unloadIdleMinutes" ? 0 : undefined)).unloadIdleMinutes, 0);
});

test("only a new Python needs a new process", () => {
  const a = clientSettings(() => undefined);
  assert.equal(needsRestart(a, { ...a, debounceMs: 5 }), false);
  assert.equal(needsRestart(a, { ...a, pythonPath: "/usr/bin/python3.12" }), true);
});
