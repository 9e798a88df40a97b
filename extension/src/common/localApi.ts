// The local OpenAI-compatible API (`python -m pyserver api`) as a child process the extension owns: started on
// request ("Set Up Continue.dev"), stopped with the extension. Continue and other tools talk to it on 127.0.0.1.
import { type ChildProcess, spawn } from "node:child_process";
import * as vscode from "vscode";

import { run } from "./setup";

export const API_PORT = 8080;

export class LocalApi implements vscode.Disposable {
  private proc: ChildProcess | undefined;

  constructor(private readonly python: string, private readonly cwd: string,
    private readonly output: vscode.LogOutputChannel) {}

  get running(): boolean {
    return this.proc !== undefined && this.proc.exitCode === null;
  }

  start(port: number = API_PORT): void {
    if (this.running) {
      return;
    }
    const proc = spawn(this.python, ["-m", "pyserver", "api", "--port", String(port)], { cwd: this.cwd });
    proc.stdout?.on("data", (d: Buffer) => this.output.info(`[api] ${d.toString().trimEnd()}`));
    proc.stderr?.on("data", (d: Buffer) => this.output.warn(`[api] ${d.toString().trimEnd()}`));
    proc.on("exit", (code) => {
      this.output.info(`[api] exited (${code ?? "signal"})`);
      if (this.proc === proc) {
        this.proc = undefined;
      }
    });
    this.proc = proc;
  }

  dispose(): void {
    this.proc?.kill();
    this.proc = undefined;
  }
}

/** Writes Continue's config for the local API (merged into what is there) and starts the API. */
export async function setUpContinue(python: string, cwd: string, api: LocalApi): Promise<void> {
  try {
    const said = await run(python, ["-m", "pyserver", "continue-config", "--port", String(API_PORT)], 60_000, cwd);
    api.start(API_PORT);
    void vscode.window.showInformationMessage(`Ryzanstein: ${said.trim().split("; ")[0]}; the local API runs on ` +
      `http://127.0.0.1:${API_PORT}/v1 while VS Code is open.`);
  } catch (e) {
    void vscode.window.showErrorMessage(`Ryzanstein could not set up Continue: ${String(e)}`);
  }
}
