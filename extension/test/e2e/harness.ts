// What the end-to-end test and the walk-through share: code-server with a VSIX installed into a fresh profile,
// headless Chromium (playwright-core) on it, and the few ways of reading and driving the workbench.
//
// Inputs (from prerequisites.sh): E2E_NODE24, E2E_CODE_SERVER, E2E_CHROMIUM.

import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { cpSync, createWriteStream, readdirSync, readFileSync, statSync } from "node:fs";
import { createServer } from "node:net";
import * as path from "node:path";
import { chromium, type Browser, type Locator, type Page } from "playwright-core";

export const ROOT = path.resolve(__dirname, "..", "..");
export const VSIX = path.join(ROOT, "build", "ryzanstein-linux-x64.vsix");
export const ARTIFACTS = path.join(ROOT, "build", "e2e");

export function env(name: string): string {
  const v = process.env[name];
  if (!v) {
    throw new Error(`${name} is not set: run this through 'make test-e2e'`);
  }
  return v;
}

export function log(msg: string): void {
  const t = ((Date.now() - started) / 1000).toFixed(1).padStart(6);
  console.log(`[e2e ${t}s] ${msg}`);
}

export const started = Date.now();

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === "object" && addr ? resolve(addr.port) : reject(new Error("no port"))));
    });
  });
}

/** A failure that waiting longer cannot mend: `waitFor` stops at once. */
export class Fatal extends Error {}

export async function waitFor<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await probe();
      if (v !== undefined) {
        return v;
      }
    } catch (e) {
      if (e instanceof Fatal) {
        throw e;
      }
      lastError = e;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}${lastError ? ` (last error: ${lastError})` : ""}`);
}

/** Ghost text is rendered with non-breaking spaces; the document has plain ones. */
export function plain(s: string): string {
  return s.replace(/\u00a0/g, " ");
}

export function userSettings(trust = false): Record<string, unknown> {
  // Keep VS Code's own suggestion widget and auto-closing out of the way, so Tab accepts our ghost text and the
  // typed text is exactly what reaches the document.
  return {
    "workbench.startupEditor": "none",
    "workbench.secondarySideBar.defaultVisibility": "hidden",
    "chat.disableAIFeatures": true,
    "workbench.tips.enabled": false,
    "workbench.enableExperiments": false,
    "telemetry.telemetryLevel": "off",
    "security.workspace.trust.enabled": trust,
    "extensions.autoUpdate": false,
    "extensions.autoCheckUpdates": false,
    "update.mode": "none",
    "editor.inlineSuggest.enabled": true,
    "editor.quickSuggestions": { other: "off", comments: "off", strings: "off" },
    "editor.suggestOnTriggerCharacters": false,
    "editor.wordBasedSuggestions": "off",
    "editor.parameterHints.enabled": false,
    "editor.autoClosingBrackets": "never",
    "editor.autoClosingQuotes": "never",
    "files.autoSave": "off",
    "ryzanstein.debounceMs": 30,
  };
}

export function dumpLogs(userData: string, artifacts = ARTIFACTS): void {
  const found: string[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const p = path.join(dir, name);
      if (statSync(p).isDirectory()) {
        walk(p);
      } else if (/ryzanstein|exthost/i.test(name) && name.endsWith(".log")) {
        found.push(p);
      }
    }
  };
  try {
    walk(path.join(userData, "logs"));
  } catch {
    return;
  }
  for (const p of found) {
    const text = readFileSync(p, "utf8");
    cpSync(p, path.join(artifacts, path.basename(path.dirname(p)) + "-" + path.basename(p)));
    console.log(`----- ${p} (last 60 lines)\n${text.split("\n").slice(-60).join("\n")}`);
  }
}

export async function statusText(page: Page): Promise<string> {
  return plain(await page.locator(".statusbar-item", { hasText: "Ryzanstein" }).first().innerText({ timeout: 1000 }));
}

export async function runCommand(page: Page, title: string): Promise<void> {
  const input = page.locator(".quick-input-widget input");
  if (await input.isVisible()) { // a quick input still open (or fading out) is not the palette
    await page.keyboard.press("Escape");
    await input.waitFor({ state: "hidden", timeout: 10_000 });
  }
  // The palette opens with ">" in its input; until then, keys would go to the editor (and replace its selection).
  await waitFor("the command palette", 20_000, async () => {
    if (!(await input.isVisible())) {
      await page.locator(".part.statusbar").click({ position: { x: 5, y: 5 } }); // out of any webview's frame
      await page.keyboard.press("F1");
      await page.waitForTimeout(300);
    }
    return (await input.isVisible()) && (await input.inputValue()).startsWith(">") ? true : undefined;
  });
  await input.fill(`>${title}`);
  await page.locator(".quick-input-list .monaco-list-row", { hasText: title }).first().waitFor({ timeout: 10_000 });
  await page.keyboard.press("Enter");
}

/** Opens `name` with Quick Open, waits for text it holds, and puts the cursor at its end. */
export async function openAtEnd(page: Page, name: string, holds: string): Promise<void> {
  await page.keyboard.press("Control+P");
  await page.locator(".quick-input-widget input").fill(name);
  await page.locator(".quick-input-list .monaco-list-row", { hasText: name }).first().waitFor({ timeout: 10_000 });
  await page.keyboard.press("Enter");
  const lines = page.locator(".part.editor .monaco-editor .view-lines").first();
  await lines.filter({ hasText: holds }).waitFor({ timeout: 20_000 });
  await lines.click();
  await page.keyboard.press("Control+End");
}

export async function save(page: Page, file: string, previous: string | undefined): Promise<string> {
  await page.keyboard.press("Control+S");
  // The save is asynchronous: wait until the file on disk changes (or, when nothing changed, settles).
  if (previous === undefined) {
    await new Promise((r) => setTimeout(r, 1000));
    return readFileSync(file, "utf8");
  }
  let last: string | undefined;
  return waitFor("the file to be saved", 15_000, async () => {
    const now = readFileSync(file, "utf8");
    const settled = now !== previous && now === last; // (two reads alike: not caught half-written)
    last = now;
    return settled ? now : undefined;
  });
}

/** Where one code-server run keeps its things: a fresh extensions folder, user data, a private config and cache. */
export interface Profile {
  tmp: string;
  extDir: string;
  userData: string;
}

export function installVsix(profile: Profile, node24: string, codeServer: string, vsix = VSIX): void {
  log(`installing ${path.relative(ROOT, vsix)} into a fresh extensions folder`);
  const inst = spawnSync(node24, [codeServer, "--extensions-dir", profile.extDir, "--user-data-dir", profile.userData,
    "--install-extension", vsix], { encoding: "utf8", timeout: 120_000 });
  if (inst.status !== 0 || !/successfully installed/i.test(inst.stdout + inst.stderr)) {
    throw new Error(`installing the VSIX failed:\n${inst.stdout}\n${inst.stderr}`);
  }
}

/** code-server on `port` with `folder` open; `trust`: Workspace Trust on (a new folder opens in Restricted Mode). */
export function startCodeServer(profile: Profile, node24: string, codeServer: string, port: number, folder: string,
  { trust = false, artifacts = ARTIFACTS, env = {} }: { trust?: boolean; artifacts?: string;
    env?: Record<string, string> } = {}): ChildProcess {
  const serverLog = createWriteStream(path.join(artifacts, "code-server.log"));
  const server: ChildProcess = spawn(node24, [codeServer, "--auth", "none", "--bind-addr", `127.0.0.1:${port}`,
    "--disable-telemetry", "--disable-update-check", ...(trust ? [] : ["--disable-workspace-trust"]),
    "--disable-getting-started-override", "--extensions-dir", profile.extDir, "--user-data-dir", profile.userData,
    folder],
    // Started in the repository, whose pyserver/ folder must not shadow the sidecar installed from the VSIX; with a
    // private config and cache, so the sidecar's first-run setup and index never touch the user's own.
    { cwd: ROOT, detached: true, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env,
      XDG_CONFIG_HOME: path.join(profile.tmp, "config"), XDG_CACHE_HOME: path.join(profile.tmp, "cache"),
      HF_HOME: path.join(profile.tmp, "hf"), ...env } });
  server.stdout?.pipe(serverLog);
  server.stderr?.pipe(serverLog);
  return server;
}

export function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: env("E2E_CHROMIUM"),
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync"],
  });
}

export function editorLines(page: Page): Locator {
  return page.locator(".part.editor .monaco-editor .view-lines").first();
}

export function ghostText(page: Page): Locator {
  return page.locator(".ghost-text-decoration, .ghost-text-decoration-preview");
}

export function toast(page: Page, text: string | RegExp): Locator {
  return page.locator(".notifications-toasts .notification-toast", { hasText: text });
}
