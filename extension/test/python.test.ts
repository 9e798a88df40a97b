import assert from "node:assert/strict";
import { test } from "node:test";

import { findPython, newEnough, parseVersion, type PythonProbe } from "../src/common/python";

function probe(table: Record<string, string | Error>, active?: string): PythonProbe & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    run: async (exe) => {
      calls.push(exe);
      const out = table[exe];
      if (out === undefined || out instanceof Error) {
        throw out ?? new Error("ENOENT");
      }
      return out;
    },
    activeInterpreter: async () => active,
  };
}

test("parses the probe's output", () => {
  assert.deepEqual(parseVersion("3.11.7\n/usr/bin/python3.11\n"), { version: [3, 11, 7], executable: "/usr/bin/python3.11" });
  assert.equal(parseVersion("Python was not found"), undefined);
  assert.equal(newEnough([3, 10, 0]), true);
  assert.equal(newEnough([3, 9, 18]), false);
  assert.equal(newEnough([4, 0, 0]), true);
});

test("the setting wins, then the Python extension, then PATH", async () => {
  const p = probe({ "/opt/py": "3.12.1\n/opt/py\n", "/venv/bin/python": "3.11.0\n/venv/bin/python\n", python3: "3.10.4\n/usr/bin/python3\n" },
    "/venv/bin/python");
  assert.equal((await findPython("/opt/py", p)).found?.source, "setting");
  const r = await findPython("", p);
  assert.deepEqual(r.found, { path: "/venv/bin/python", version: [3, 11, 0], source: "python-extension" });
  assert.deepEqual((await findPython("", probe({ python3: "3.10.4\n/usr/bin/python3\n" }))).found?.path, "/usr/bin/python3");
});

test("too old or broken interpreters are passed over with a reason", async () => {
  const p = probe({ "/old": "3.8.10\n/old\n", python3: new Error("boom"), python: "3.13.0\n/usr/bin/python\n" });
  const r = await findPython("/old", p);
  assert.equal(r.found?.path, "/usr/bin/python");
  assert.deepEqual(r.tried, ["/old: Python 3.8.10 is older than 3.10", "python3: cannot run"]);
  const none = await findPython("", probe({}));
  assert.equal(none.found, undefined);
  assert.equal(none.tried.length, 2);
});
