// Finding a Python >= 3.10 for the sidecar: the setting, then the Python extension's active interpreter, then
// python3 / python on PATH. Everything the search touches is injected, so it is tested without VS Code.

export interface PythonProbe {
  /** Runs `exe -c code`; resolves stdout, rejects if the program cannot run. */
  run(exe: string, args: string[]): Promise<string>;
  /** The Python extension's active interpreter, if that extension is present. */
  activeInterpreter(): Promise<string | undefined>;
}

export interface FoundPython {
  path: string;
  version: [number, number, number];
  source: "setting" | "python-extension" | "path";
}

export const MIN_VERSION: [number, number] = [3, 10];
const VERSION_CODE = "import sys; print('%d.%d.%d' % sys.version_info[:3]); print(sys.executable)";

export function parseVersion(out: string): { version: [number, number, number]; executable: string } | undefined {
  const [first, second] = out.trim().split(/\r?\n/);
  const m = /^(\d+)\.(\d+)\.(\d+)$/.exec(first ?? "");
  if (!m) {
    return undefined;
  }
  return { version: [Number(m[1]), Number(m[2]), Number(m[3])], executable: (second ?? "").trim() };
}

export function newEnough(v: [number, number, number]): boolean {
  return v[0] > MIN_VERSION[0] || (v[0] === MIN_VERSION[0] && v[1] >= MIN_VERSION[1]);
}

/** The first usable interpreter, with what was tried and why it was passed over. */
export async function findPython(
  setting: string,
  probe: PythonProbe,
): Promise<{ found?: FoundPython; tried: string[] }> {
  const candidates: Array<[string, FoundPython["source"]]> = [];
  if (setting) {
    candidates.push([setting, "setting"]);
  }
  const active = await probe.activeInterpreter().catch(() => undefined);
  if (active) {
    candidates.push([active, "python-extension"]);
  }
  candidates.push(["python3", "path"], ["python", "path"]);
  const tried: string[] = [];
  for (const [exe, source] of candidates) {
    let out: string;
    try {
      out = await probe.run(exe, ["-c", VERSION_CODE]);
    } catch {
      tried.push(`${exe}: cannot run`);
      continue;
    }
    const parsed = parseVersion(out);
    if (!parsed) {
      tried.push(`${exe}: not a Python interpreter`);
      continue;
    }
    if (!newEnough(parsed.version)) {
      tried.push(`${exe}: Python ${parsed.version.join(".")} is older than ${MIN_VERSION.join(".")}`);
      continue;
    }
    return { found: { path: parsed.executable || exe, version: parsed.version, source }, tried };
  }
  return { tried };
}
