// The new user's first hour, scripted (issue 29): the VSIX in code-server with a fresh profile; a new folder opened
// with Workspace Trust on (Restricted Mode); then, trusted, completion spots in real projects (the rest of a line
// deleted, a suggestion asked for with Alt+\, compared with what was there), and every palette command. Records
// what the editor showed (results.json) and a screenshot per step under WALK_OUT. Not part of `make test`:
//
//   WALK_VSIX=build/ryzanstein-linux-x64.vsix WALK_OUT=/tmp/walk29/after WALK_SPOTS=/tmp/walk29/spots.json \
//   WALK_PROJECTS=/path/a:/path/b  (with prerequisites.sh's environment)  node dist/e2e/walkthrough.js
//
// spots.py picks the spots; api_walk.py walks the local API with the openai client.

import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { Browser, Page } from "playwright-core";

import { env, freePort, ghostText, installVsix, launchBrowser, log, plain, type Profile, runCommand,
  startCodeServer, userSettings, waitFor } from "../harness";

interface Spot { project: string; file: string; line: number; column: number; kind: string; target: string }
interface Step { step: string; saw: string[]; shot: string; note?: string }

const OUT = env("WALK_OUT");
const results: { restricted?: Step; spots: Record<string, unknown>[]; commands: Step[] } = { spots: [], commands: [] };
let shots = 0;

function profile(name: string): Profile {
  const tmp = mkdtempSync(path.join(os.tmpdir(), `ryz-walk-${name}-`));
  const p = { tmp, extDir: path.join(tmp, "extensions"), userData: path.join(tmp, "user-data") };
  mkdirSync(path.join(p.userData, "User"), { recursive: true });
  return p;
}

function settings(p: Profile, trust: boolean): void {
  const s = { ...userSettings(trust), "ryzanstein.debounceMs": 120 };
  writeFileSync(path.join(p.userData, "User", "settings.json"), JSON.stringify(s, null, 2));
}

async function shot(page: Page, name: string): Promise<string> {
  const file = `${String(++shots).padStart(2, "0")}-${name.replace(/[^a-z0-9]+/gi, "-").toLowerCase()}.png`;
  await page.screenshot({ path: path.join(OUT, file) });
  return file;
}

/** What the workbench shows that a user reads: notification toasts, the status bar's Ryzanstein items, the tabs. */
async function seen(page: Page): Promise<string[]> {
  const texts = async (sel: string) => (await page.locator(sel).allInnerTexts()).map((t) => plain(t).replace(/\s+/g, " ").trim())
    .filter(Boolean);
  const toasts = (await texts(".notifications-toasts .notification-toast")).map((t) => `toast: ${t}`);
  const status = (await texts(".statusbar-item")).filter((t) => /Ryzanstein/i.test(t)).map((t) => `status: ${t}`);
  const tabs = (await texts(".tabs-container .tab")).map((t) => `tab: ${t}`);
  const picks = (await texts(".quick-input-widget .monaco-list-row")).slice(0, 12).map((t) => `pick: ${t}`);
  return [...toasts, ...status, ...tabs, ...picks];
}

async function statusLine(page: Page): Promise<string> {
  return (await seen(page)).filter((s) => s.startsWith("status:")).join(" | ");
}

async function openFile(page: Page, file: string): Promise<void> {
  await page.keyboard.press("Escape");
  await page.keyboard.press("Control+P");
  await page.locator(".quick-input-widget input").fill(file);
  await page.locator(".quick-input-list .monaco-list-row", { hasText: path.basename(file) }).first()
    .waitFor({ timeout: 10_000 });
  await page.keyboard.press("Enter");
  await page.locator(".part.editor .monaco-editor .view-lines").first().waitFor({ timeout: 20_000 });
  await page.waitForTimeout(500);
}

async function goto(page: Page, line: number, column = 1): Promise<void> {
  await page.keyboard.press("Control+G");
  const input = page.locator(".quick-input-widget input");
  await input.waitFor({ state: "visible", timeout: 10_000 });
  await input.fill(`:${line}:${column}`);
  await page.keyboard.press("Enter");
  await input.waitFor({ state: "hidden", timeout: 10_000 });
}

async function waitForSidecar(page: Page, what: string): Promise<void> {
  const t = await waitFor(`the sidecar (${what})`, 6 * 60_000, async () => {
    const s = await statusLine(page);
    return /Ryzanstein/.test(s) && !/loading|setting up/i.test(s) && !/Ryzanstein:/.test(s.split("|")[0]) ? s : undefined;
  }).catch(async (e: unknown) => `not ready: ${e} (${await statusLine(page)})`);
  log(`${what}: ${t}`);
}

function firstLine(s: string): string {
  return s.split("\n")[0].trimEnd();
}

/** One spot: the rest of its line deleted, Alt+\ pressed, and what came (or what the editor said instead). */
async function completeAt(page: Page, spot: Spot, index: number): Promise<void> {
  await openFile(page, spot.file);
  await goto(page, spot.line, spot.column);
  await page.keyboard.press("Shift+End");
  await page.keyboard.press("Delete");
  await page.waitForTimeout(300);
  await page.keyboard.press("Alt+Backslash");
  let said = "";
  const ghost = await waitFor("ghost text", 12_000, async () => {
    const g = ghostText(page);
    if ((await g.count()) === 0) {
      const status = await statusLine(page); // (an answer that says why nothing came shows for a few seconds)
      if (/no suggestion:/.test(status)) {
        said = status;
        return "";
      }
      return undefined;
    }
    // (the suggestion's first line comes as several spans, one per token colour)
    const t = plain((await g.allInnerTexts()).join(""));
    return t.trim() ? t : undefined;
  }).catch(() => "");
  said = ghost ? "" : said || (await statusLine(page));
  const file = await shot(page, `spot-${index + 1}`);
  const want = spot.target.trim();
  const got = firstLine(ghost).trim();
  const right = !!got && (got === want || (want.length >= 10 && got.slice(0, 10) === want.slice(0, 10)));
  results.spots.push({ ...spot, suggestion: ghost, right, said, shot: file });
  log(`spot ${index + 1} ${spot.file}:${spot.line}:${spot.column}: ${ghost ? `${JSON.stringify(got)} (${right ? "right" : "wrong"}; wanted ${JSON.stringify(want)})` : `nothing; ${said}`}`);
  await page.keyboard.press("Escape");
  await page.keyboard.press("Control+Z");
  await page.keyboard.press("Control+S");
}

/** A palette command, and what the user sees after it (a gated refactor is tried anyway; a preview is watched for
 * 15 s, a command is run from inside it, then it is discarded). */
async function command(page: Page, title: string, waitMs = 6000, input?: string): Promise<void> {
  await page.locator(".notifications-toasts .notification-toast .codicon-notifications-clear-all, .notifications-toasts .codicon-close")
    .all().then(async (xs) => { for (const x of xs) { await x.click({ timeout: 500 }).catch(() => undefined); } });
  await runCommand(page, title);
  if (input) {
    const box = page.locator(".quick-input-widget input");
    await box.waitFor({ state: "visible", timeout: 10_000 });
    await page.waitForTimeout(300);
    await box.fill(input);
    await page.keyboard.press("Enter");
  }
  await page.waitForTimeout(waitMs);
  const saw = await seen(page);
  const step: Step = { step: title, saw, shot: await shot(page, title) };
  results.commands.push(step);
  log(`${title}: ${saw.filter((s) => !s.startsWith("tab:")).join(" | ").slice(0, 400)}`);
  const anyway = page.locator(".notifications-toasts .monaco-button", { hasText: "Try Anyway" });
  if ((await anyway.count()) > 0) {
    await anyway.first().click();
    await afterTryAnyway(page, title);
  }
}

async function afterTryAnyway(page: Page, title: string): Promise<void> {
  const apply = page.locator(".notifications-toasts .monaco-button, .editor-actions .action-label",
    { hasText: /^\s*Apply\s*$/ }).or(page.locator(".editor-actions .action-label[aria-label*='Apply']"));
  const came = await waitFor(`${title}: the outcome`, 120_000, async () => {
    if ((await apply.count()) > 0 || (await page.locator(".monaco-diff-editor").count()) > 0) {
      return "preview";
    }
    const toasts = await page.locator(".notifications-toasts .notification-toast").allInnerTexts();
    return toasts.some((t) => !/Try Anyway|setting up|writing|running|explaining/i.test(t)) ? "message" : undefined;
  }).catch(() => "nothing");
  await page.waitForTimeout(1500);
  const step: Step = { step: `${title} → Try Anyway`, saw: await seen(page), shot: await shot(page, `${title} anyway`) };
  results.commands.push(step);
  log(`${step.step}: ${came}: ${step.saw.filter((s) => !s.startsWith("tab:")).join(" | ").slice(0, 400)}`);
  if (came !== "preview") {
    return;
  }
  await page.waitForTimeout(15_000); // the preview a while later: are Apply / Discard still there?
  const later: Step = { step: `${title} preview after 15 s`, saw: await seen(page), shot: await shot(page, `${title} preview later`),
    note: `Apply visible: ${(await apply.count()) > 0}` };
  results.commands.push(later);
  log(`${later.step}: ${later.note}`);
  // A command with the cursor in the proposal (the diff's right side).
  await page.locator(".monaco-diff-editor .editor.modified .view-lines").first().click().catch(() => undefined);
  await runCommand(page, "Ryzanstein: Add Docstring");
  await page.waitForTimeout(5000);
  const inside: Step = { step: `Add Docstring inside the ${title} proposal`, saw: await seen(page),
    shot: await shot(page, "command inside proposal") };
  results.commands.push(inside);
  log(`${inside.step}: ${inside.saw.filter((s) => s.startsWith("toast:")).join(" | ").slice(0, 300)}`);
  const discard = page.locator(".notifications-toasts .monaco-button, .editor-actions .action-label",
    { hasText: /^\s*Discard\s*$/ }).or(page.locator(".editor-actions .action-label[aria-label*='Discard']"));
  if ((await discard.count()) > 0) {
    await discard.first().click();
  } else {
    await page.keyboard.press("Control+W");
  }
  await page.waitForTimeout(1000);
}

async function restricted(vsix: string, node24: string, codeServer: string, folder: string): Promise<void> {
  const p = profile("restricted");
  settings(p, true);
  installVsix(p, node24, codeServer, vsix);
  const work = path.join(p.tmp, "ws", path.basename(folder));
  cpSync(folder, work, { recursive: true });
  const port = await freePort();
  const server = startCodeServer(p, node24, codeServer, port, work, { trust: true, artifacts: OUT });
  let browser: Browser | undefined;
  try {
    await waitFor("code-server", 60_000, async () => ((await fetch(`http://127.0.0.1:${port}/healthz`)).ok ? true : undefined));
    browser = await launchBrowser();
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    await page.goto(`http://127.0.0.1:${port}/?folder=${encodeURIComponent(work)}`);
    await page.locator(".monaco-workbench").waitFor({ timeout: 60_000 });
    const no = page.locator(".monaco-dialog-box .monaco-button", { hasText: /No, I don't trust|Don't Trust|No/ });
    await no.first().click({ timeout: 30_000 }).catch(() => log("no trust dialog"));
    await page.waitForTimeout(20_000);
    const hover = page.locator(".statusbar-item", { hasText: "Ryzanstein" }).first();
    if ((await hover.count()) > 0) {
      await hover.hover();
      await page.waitForTimeout(1500);
    }
    results.restricted = { step: "a new folder in Restricted Mode", saw: await seen(page), shot: await shot(page, "restricted") };
    const tip = await page.locator(".monaco-hover, .workbench-hover").allInnerTexts().catch(() => []);
    results.restricted.note = `hover: ${tip.join(" ").replace(/\s+/g, " ")}`;
    log(`restricted mode: ${results.restricted.saw.filter((s) => !s.startsWith("tab:")).join(" | ")}; ${results.restricted.note}`);
  } finally {
    await browser?.close().catch(() => undefined);
    if (server.pid) {
      try { process.kill(-server.pid, "SIGTERM"); } catch { /* gone */ }
    }
  }
}

async function main(): Promise<void> {
  const node24 = env("E2E_NODE24");
  const codeServer = env("E2E_CODE_SERVER");
  const vsix = path.resolve(env("WALK_VSIX"));
  const projects = env("WALK_PROJECTS").split(":");
  const spots = JSON.parse(readFileSync(env("WALK_SPOTS"), "utf8")) as Spot[];
  mkdirSync(OUT, { recursive: true });
  await restricted(vsix, node24, codeServer, projects[0]);

  const p = profile("trusted");
  settings(p, false);
  installVsix(p, node24, codeServer, vsix);
  const copies = projects.map((f) => {
    const work = path.join(p.tmp, "ws", path.basename(f));
    cpSync(f, work, { recursive: true });
    return work;
  });
  const port = await freePort();
  const home = path.join(p.tmp, "home");
  mkdirSync(home, { recursive: true });
  const server = startCodeServer(p, node24, codeServer, port, copies[0],
    { artifacts: OUT, env: { HOME: home, PYENV_ROOT: process.env.PYENV_ROOT ?? path.join(os.homedir(), ".pyenv") } });
  let browser: Browser | undefined;
  try {
    await waitFor("code-server", 60_000, async () => ((await fetch(`http://127.0.0.1:${port}/healthz`)).ok ? true : undefined));
    browser = await launchBrowser();
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    for (const [i, work] of copies.entries()) {
      await page.goto(`http://127.0.0.1:${port}/?folder=${encodeURIComponent(work)}`);
      await page.locator(".monaco-workbench").waitFor({ timeout: 60_000 });
      await waitForSidecar(page, path.basename(work));
      await shot(page, `ready-${path.basename(work)}`);
      const mine = spots.filter((s) => s.project === path.basename(projects[i]));
      for (const spot of mine) {
        await completeAt(page, spot, results.spots.length);
      }
      if (i === 0) {
        await commands(page);
      }
    }
  } finally {
    writeFileSync(path.join(OUT, "results.json"), JSON.stringify(results, null, 1));
    await browser?.close().catch(() => undefined);
    if (server.pid) {
      try { process.kill(-server.pid, "SIGTERM"); } catch { /* gone */ }
    }
    rmSync(p.tmp, { recursive: true, force: true, maxRetries: 3 });
  }
}

/** Every palette command of ours, in schedule/__init__.py (its lines as of schedule 1.2.2). */
async function commands(page: Page): Promise<void> {
  await openFile(page, "schedule/__init__.py");
  await goto(page, 932);
  await command(page, "Ryzanstein: Add Docstring");
  await openFile(page, "schedule/__init__.py");
  await goto(page, 863);
  await command(page, "Ryzanstein: Update Docstring");
  await openFile(page, "schedule/__init__.py");
  await goto(page, 931);
  for (let k = 0; k < 14; k++) {
    await page.keyboard.press("Shift+ArrowDown");
  }
  await command(page, "Ryzanstein: Explain Selection");
  await openFile(page, "schedule/__init__.py");
  await goto(page, 941);
  await page.keyboard.press("Shift+ArrowDown");
  await page.keyboard.press("Shift+ArrowDown");
  await page.keyboard.press("Shift+End");
  await command(page, "Ryzanstein: Rewrite Selection", 6000, "rename weekdays to days");
  await openFile(page, "schedule/__init__.py");
  await goto(page, 933);
  await command(page, "Ryzanstein: Write Tests for Function", 30_000);
  for (const title of ["Ryzanstein: Toggle Inline Completions", "Ryzanstein: Toggle Inline Completions",
    "Ryzanstein: Trigger Completion", "Ryzanstein: Show Status and Doctor Report", "Ryzanstein: Doctor Report",
    "Ryzanstein: Set Up Continue.dev", "Ryzanstein: Restart Sidecar", "Ryzanstein: Re-index Workspace",
    "Ryzanstein: Choose Model or Tier", "Ryzanstein: Inspect Model", "Ryzanstein: Inspect Index",
    "Ryzanstein: Snooze or Resume", "Ryzanstein: Snooze or Resume", "Ryzanstein: Accept Next Word",
    "Ryzanstein: Accept Next Line"]) {
    await command(page, title, /Doctor|Inspect|Restart|Continue/.test(title) ? 15_000 : 4000);
    await page.keyboard.press("Escape");
  }
}

main().then(() => log("walk-through done"), (e: unknown) => {
  console.error(`walk-through failed: ${e instanceof Error ? e.stack ?? e.message : String(e)}`);
  writeFileSync(path.join(OUT, "results.json"), JSON.stringify(results, null, 1));
  process.exit(1);
});
