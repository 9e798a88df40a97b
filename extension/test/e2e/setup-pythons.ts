// First-run setup with the real VSIX contents for each other CPython the machine has (the e2e test covers the
// default one in a real VS Code): the extension's own ensureSidecar installs the wheels offline into a fresh
// virtual environment, then the installed sidecar completes a line with the shipped model and answers LSP.

import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

import { ensureSidecar, run } from "../../src/common/setup";

const ROOT = path.resolve(__dirname, "..", "..");
const WHEELS = path.join(ROOT, "extension", "resources", "wheels");
// As the extension does: the VSIX's wheels leave the shipped model out and it travels once, here.
process.env.RYZANSTEIN_MODEL_DIR = path.join(ROOT, "extension", "resources", "model");

function log(msg: string): void {
  console.log(`[setup-pythons] ${msg}`);
}

/** Interpreters to try: E2E_PYTHONS (colon-separated), else pyenv's 3.10, 3.12 and 3.13. */
function interpreters(): string[] {
  if (process.env.E2E_PYTHONS) {
    return process.env.E2E_PYTHONS.split(":").filter(Boolean);
  }
  const base = path.join(os.homedir(), ".pyenv", "versions");
  if (!existsSync(base)) {
    return [];
  }
  return readdirSync(base).filter((v) => /^3\.(10|12|13)\./.test(v)).map((v) => path.join(base, v, "bin", "python3"))
    .filter((p) => existsSync(p));
}

/** initialize + shutdown over stdio: the sidecar speaks LSP under this interpreter. */
function lspHandshake(python: string, cwd: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn(python, ["-m", "pyserver"], { cwd, stdio: ["pipe", "pipe", "ignore"] });
    const send = (msg: object) => {
      const body = JSON.stringify(msg);
      p.stdin.write(`Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    };
    let out = "";
    let answered = false;
    p.stdin.on("error", () => undefined); // it may be gone after `exit`
    const timer = setTimeout(() => { p.kill(); reject(new Error("no LSP answer in 60 s")); }, 60_000);
    p.stdout.on("data", (d: Buffer) => {
      out += d.toString();
      const m = /"serverInfo":\s*\{"name":\s*"ryzanstein",\s*"version":\s*"([^"]+)"/.exec(out);
      if (m && !answered) {
        answered = true;
        clearTimeout(timer);
        send({ jsonrpc: "2.0", id: 2, method: "shutdown" });
        send({ jsonrpc: "2.0", method: "exit" });
        resolve(m[1]);
      }
    });
    send({ jsonrpc: "2.0", id: 1, method: "initialize", params: { processId: null, rootUri: null, capabilities: {} } });
  });
}

async function main(): Promise<void> {
  const pythons = interpreters();
  if (pythons.length === 0) {
    log("no other CPython 3.10-3.13 here (pyenv): skipped");
    return;
  }
  for (const python of pythons) {
    const version = (await run(python, ["-c", "import sys; print(sys.version.split()[0])"])).trim();
    const storage = mkdtempSync(path.join(os.tmpdir(), "ryzanstein-setup-"));
    try {
      const t0 = Date.now();
      const py = await ensureSidecar(python, storage, WHEELS, (m) => log(`${version}: ${m}`));
      log(`${version}: installed in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      const sample = path.join(storage, "sample.py");
      writeFileSync(sample, "import math\n\n\ndef circle_area(radius):\n    return math.pi * radius * radius\n\n\ndef f(x):\n    return \n");
      const out = JSON.parse(await run(py, ["-m", "pyserver", "complete", `${sample}:9:12`, "--json"], 120_000, storage));
      if (typeof out.suggestion !== "string" || !String(out.model).endsWith("ryzanstein-code.gguf")) {
        throw new Error(`unexpected completion output: ${JSON.stringify(out)}`);
      }
      const served = await lspHandshake(py, storage);
      log(`${version}: completion ran (${out.latency_ms} ms, model ${path.basename(String(out.model))}); LSP server ${served}`);
    } finally {
      rmSync(storage, { recursive: true, force: true });
    }
  }
  log("passed");
}

main().catch((e: unknown) => {
  console.error(`setup-pythons failed: ${e instanceof Error ? e.stack ?? e.message : String(e)}`);
  process.exit(1);
});
