import assert from "node:assert/strict";
import { test } from "node:test";

import { CSP, type InspectUi, PANEL_OPTIONS, pagesOf, runInspection, withCsp } from "../src/common/inspect";

function fakeUi(): InspectUi & { shown: { title: string; html: string }[]; warnings: string[] } {
  const shown: { title: string; html: string }[] = [];
  const warnings: string[] = [];
  return {
    shown,
    warnings,
    show: (title, html) => void shown.push({ title, html }),
    progress: (_title, task) => task(),
    warn: (m) => void warnings.push(m),
  };
}

test("the policy comes first in the page's head, whatever the page says", () => {
  const page = '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>x</title></head><body>b</body></html>';
  const out = withCsp(page);
  assert.ok(out.startsWith('<!DOCTYPE html><html lang="en"><head><meta http-equiv="Content-Security-Policy"'));
  assert.ok(out.includes(`content="${CSP}"`));
  assert.equal(CSP, "default-src 'none'; style-src 'unsafe-inline'; img-src data:");
  const bare = withCsp("<p>hi</p>");
  assert.match(bare, /^<!DOCTYPE html><html><head><meta http-equiv="Content-Security-Policy"[^>]*><\/head><body><p>hi<\/p>/);
  assert.equal(PANEL_OPTIONS.enableScripts, false);
  assert.deepEqual(PANEL_OPTIONS.localResourceRoots, []);
});

test("an answer's pages, or why there are none", () => {
  assert.deepEqual(pagesOf({ html: "<p>m</p>", title: "Inspect: m.gguf" }, "model"),
    [{ title: "Inspect: m.gguf", html: "<p>m</p>" }]);
  const two = pagesOf({ html: "<p>a</p>", pages: [{ title: "A", html: "<p>a</p>" }, { title: "B", html: "<p>b</p>" }] },
    "index");
  assert.deepEqual(typeof two === "string" ? two : two.map((p) => p.title), ["A", "B"]);
  assert.equal(pagesOf({ html: null, reason: "no model is loaded yet" }, "model"), "no model is loaded yet");
  assert.equal(pagesOf(undefined, "index"), "the sidecar returned no report");
  assert.deepEqual(pagesOf({ html: "<p>x</p>" }, "index"), [{ title: "Inspect Index", html: "<p>x</p>" }]);
});

test("inspecting asks the sidecar and shows each page with the policy", async () => {
  const ui = fakeUi();
  const calls: unknown[] = [];
  const client = {
    sendRequest: async (method: string, params: unknown) => {
      calls.push([method, params]);
      return { html: "<html><head></head><body>r</body></html>", title: "Inspect: m" };
    },
  };
  await runInspection(ui, client, "model");
  assert.deepEqual(calls, [["workspace/executeCommand", { command: "ryzanstein.sidecar.inspectModel", arguments: [] }]]);
  assert.equal(ui.shown.length, 1);
  assert.equal(ui.shown[0].title, "Inspect: m");
  assert.ok(ui.shown[0].html.includes(CSP));

  const none = fakeUi();
  await runInspection(none, { sendRequest: async () => ({ html: null, reason: "no workspace folder is indexed" }) }, "index");
  assert.deepEqual(none.shown, []);
  assert.deepEqual(none.warnings, ["Ryzanstein: no workspace folder is indexed"]);
  const stopped = fakeUi();
  await runInspection(stopped, undefined, "index");
  assert.deepEqual(stopped.warnings, ["Ryzanstein: the sidecar is not running."]);
});
