// How the status bar names a model (kept apart from status.ts, which needs VS Code, so it can be unit-tested).

/** A model file's name without its extension, at most 24 characters (the status bar is narrow). */
export function shortModelName(file: string): string {
  const stem = file.replace(/\.gguf$/i, "");
  return stem.length > 24 ? `${stem.slice(0, 23)}…` : stem;
}
