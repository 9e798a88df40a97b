// First-run setup: a Python that can run the sidecar. A Python that already has it (a developer's checkout) is
// used as is; otherwise a virtual environment in the extension's global storage gets the wheels shipped inside the
// VSIX (extension/resources/wheels), installed offline first.

import { execFile } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import * as path from "node:path";

export function run(exe: string, args: string[], timeoutMs = 600_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(exe, args, { timeout: timeoutMs, maxBuffer: 16 * 2 ** 20 }, (err, stdout, stderr) => {
      if (err) {
        reject(new Error(`${exe} ${args.join(" ")}: ${stderr || err.message}`));
      } else {
        resolve(stdout);
      }
    });
  });
}

export function venvPython(venvDir: string): string {
  return process.platform === "win32" ? path.join(venvDir, "Scripts", "python.exe") : path.join(venvDir, "bin", "python");
}

export async function hasSidecar(python: string): Promise<boolean> {
  try {
    await run(python, ["-c", "import pyserver.native"], 60_000);
    return true;
  } catch {
    return false;
  }
}

/** The interpreter that will run `python -m pyserver`, installing into storageDir/venv if needed. */
export async function ensureSidecar(
  basePython: string,
  storageDir: string,
  wheelsDir: string,
  report: (message: string) => void,
): Promise<string> {
  if (await hasSidecar(basePython)) {
    return basePython;
  }
  const venv = path.join(storageDir, "venv");
  const py = venvPython(venv);
  if (existsSync(py) && (await hasSidecar(py))) {
    return py;
  }
  report("creating a virtual environment");
  await run(basePython, ["-m", "venv", venv]);
  const wheels = existsSync(wheelsDir) ? readdirSync(wheelsDir).filter((f) => f.startsWith("ryzanstein-")) : [];
  if (wheels.length === 0) {
    throw new Error(`no sidecar wheel in ${wheelsDir}: this build of the extension is incomplete`);
  }
  report("installing the sidecar (offline)");
  const target = path.join(wheelsDir, wheels.sort().pop() as string);
  try {
    await run(py, ["-m", "pip", "install", "--no-index", "--find-links", wheelsDir, target]);
  } catch {
    report("installing the sidecar's dependencies from the package index");
    await run(py, ["-m", "pip", "install", "--find-links", wheelsDir, target]);
  }
  if (!(await hasSidecar(py))) {
    throw new Error("the sidecar was installed but does not import; see the output channel");
  }
  return py;
}
