// The extension's settings, defined once in package.json, mapped to what the sidecar reads (its ServerSettings).

export type Getter = (key: string) => unknown;

export interface ClientSettings {
  enable: boolean;
  debounceMs: number;
  pythonPath: string;
  trigger: "automatic" | "manual";
  languages: Record<string, boolean>;
}

/** Per VS Code language id, "*" for the rest (the sidecar's ServerSettings.languages has the same default). */
export const DEFAULT_LANGUAGES: Record<string, boolean> = { "*": true, markdown: false, plaintext: false, scminput: false };

const num = (v: unknown, d: number): number => (typeof v === "number" && Number.isFinite(v) && v >= 0 ? v : d);
const str = (v: unknown, d: string): string => (typeof v === "string" ? v : d);
const bool = (v: unknown, d: boolean): boolean => (typeof v === "boolean" ? v : d);
const strs = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : []);
const flags = (v: unknown, d: Record<string, boolean>): Record<string, boolean> => {
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    return d;
  }
  const out: Record<string, boolean> = {};
  for (const [k, x] of Object.entries(v)) {
    if (typeof x === "boolean") {
      out[k.toLowerCase()] = x;
    }
  }
  return out;
};
const unit = (v: unknown): number | null => (typeof v === "number" && v >= 0 && v <= 1 ? v : null);

/** Whether suggestions are wanted in this language (the "*" entry for the ones not named). */
export function languageEnabled(languages: Record<string, boolean>, languageId: string): boolean {
  return languages[languageId.toLowerCase()] ?? languages["*"] ?? true;
}

/** Settings the extension itself acts on. */
export function clientSettings(get: Getter): ClientSettings {
  return {
    enable: bool(get("enable"), true),
    debounceMs: num(get("debounceMs"), 120),
    pythonPath: str(get("pythonPath"), ""),
    trigger: get("trigger") === "manual" ? "manual" : "automatic",
    languages: flags(get("languages"), DEFAULT_LANGUAGES),
  };
}

/** Whether to ask the sidecar at all: not while snoozed, not in a language switched off, and in manual mode only
 * when the user asked (Trigger Completion). */
export function wantsSuggestion(s: ClientSettings, languageId: string, automatic: boolean, snoozed: boolean): boolean {
  return whyNoSuggestion(s, languageId, automatic, snoozed ? 1 : 0) === undefined;
}

/** Why the sidecar is not asked (one line for the user), or undefined when it is. */
export function whyNoSuggestion(s: ClientSettings, languageId: string, automatic: boolean,
  snoozedMinutes: number): string | undefined {
  if (!s.enable) {
    return "suggestions are off (Toggle Inline Completions)";
  }
  if (snoozedMinutes > 0) {
    return `suggestions are snoozed (${snoozedMinutes} more minutes; the status bar menu resumes them)`;
  }
  if (!languageEnabled(s.languages, languageId)) {
    return `suggestions are off for ${languageId} (ryzanstein.languages)`;
  }
  if (automatic && s.trigger === "manual") {
    return "ryzanstein.trigger is manual: only Alt+\\ asks";
  }
  return undefined;
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
    minConfidence: unit(get("minConfidence")),
    languages: flags(get("languages"), DEFAULT_LANGUAGES),
    trigger: get("trigger") === "manual" ? "manual" : "automatic",
    logPrompts: bool(get("logPrompts"), false),
  };
}

/** Changes that need a new sidecar process rather than a settings update. */
export function needsRestart(before: ClientSettings, after: ClientSettings): boolean {
  return before.pythonPath !== after.pythonPath;
}
