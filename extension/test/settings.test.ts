import assert from "node:assert/strict";
import { test } from "node:test";

import {
  DEFAULT_LANGUAGES, clientSettings, languageEnabled, needsRestart, serverSettings, wantsSuggestion,
} from "../src/common/settings";

test("defaults when nothing is set", () => {
  const none = () => undefined;
  assert.deepEqual(clientSettings(none), {
    enable: true, debounceMs: 120, pythonPath: "", trigger: "automatic", languages: DEFAULT_LANGUAGES,
  });
  assert.deepEqual(serverSettings(none), {
    enable: true, maxLines: 8, maxTokens: 64, modelPath: "", tier: "auto", threads: 0, unloadIdleMinutes: 15,
    modelFolders: [], indexInclude: [], indexExclude: [], minConfidence: null, languages: DEFAULT_LANGUAGES,
    trigger: "automatic", logPrompts: false,
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

test("languages: named ones as set, the rest by '*'; Markdown and plain text off by default", () => {
  assert.equal(languageEnabled(DEFAULT_LANGUAGES, "python"), true);
  assert.equal(languageEnabled(DEFAULT_LANGUAGES, "markdown"), false);
  assert.equal(languageEnabled(DEFAULT_LANGUAGES, "PlainText"), false);
  assert.equal(languageEnabled({ "*": false, python: true }, "go"), false);
  assert.equal(languageEnabled({ "*": false, python: true }, "python"), true);
  assert.equal(languageEnabled({}, "rust"), true);
  const s = clientSettings((k) => (k === "languages" ? { Python: false, go: "yes" } : undefined));
  assert.deepEqual(s.languages, { python: false }); // lower-cased; non-boolean values dropped
});

test("minConfidence passes through only as a number in [0, 1]", () => {
  assert.equal(serverSettings((k) => (k === "minConfidence" ? 0.3 : undefined)).minConfidence, 0.3);
  assert.equal(serverSettings((k) => (k === "minConfidence" ? 0 : undefined)).minConfidence, 0);
  assert.equal(serverSettings((k) => (k === "minConfidence" ? 7 : undefined)).minConfidence, null);
});

test("whether to ask: snooze, language, manual trigger", () => {
  const s = clientSettings(() => undefined);
  assert.equal(wantsSuggestion(s, "python", true, false), true);
  assert.equal(wantsSuggestion(s, "python", true, true), false); // snoozed
  assert.equal(wantsSuggestion(s, "markdown", false, false), false);
  const manual = { ...s, trigger: "manual" as const };
  assert.equal(wantsSuggestion(manual, "python", true, false), false); // typing does not ask
  assert.equal(wantsSuggestion(manual, "python", false, false), true); // Alt+\\ does
  assert.equal(wantsSuggestion({ ...s, enable: false }, "python", false, false), false);
});
