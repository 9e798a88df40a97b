// The extension's settings, defined once in package.json, mapped to what the sidecar reads (its ServerSettings).

export type Getter = (key: string) => unknown;

export interface ClientSettings {
  enable: boolean;
  debounceMs: number;
  pythonPath: string;
  tier: string;
}

const num = (v: unknown, d: number): number => (typeof v === "number" && Number.isFinite(v) && v >= 0 ? v : d);
const str = (v: unknown, d: string): string => (typeof v === "string" ? v : d);
const bool = (v: unknown, d: boolean): boolean => (typeof v === "boolean" ? v : d);
const strs = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : []);

/** Settings the extension itself acts on. */
export function clientSettings(get: Getter): ClientSettings {
  return {
    enable: bool(get("enable"), true),
    debounceMs: num(get("debounceMs"), 120),
    pythonPath: str(get("pythonPath"), ""),
    tier: str(get("tier"), "auto"),
  };
}

/** The `ryzanstein` object sent as initializationOptions and on every configuration change. */
export function serverSettings(get: Getter): Record<string, unknown> {
  return {
    enable: bool(get("enable"), true),
    maxLines: num(get("maxLines"), 8),
    maxTokens: num(get("maxTokens"), 64),
    modelPath: str(get("modelPath"), ""),
    tier: str(get("tier"), "auto"),
    threads: num(get("threads"), 0),
    unloadIdleMinutes: num(get("unloadIdleMinutes"), 15),
    modelFolders: strs(get("modelFolders")),
    indexInclude: strs(get("index.include")),
    indexExclude: strs(get("index.exclude")),
  };
}

/** Changes that need a new sidecar process rather than a settings update. */
export function needsRestart(before: ClientSettings, after: ClientSettings): boolean {
  return before.pythonPath !== after.pythonPath;
}
