// The sidecar process and its language client: started over stdio, restarted with back-off when it crashes, or
// when it stops answering (health.ts).

import { type ChildProcess, spawn } from "node:child_process";
import * as vscode from "vscode";
import {
  CloseAction,
  ErrorAction,
  LanguageClient,
  type LanguageClientOptions,
  type ServerOptions,
  type StreamInfo,
} from "vscode-languageclient/node";

import { RestartBackoff } from "./backoff";
import { HealthMonitor, PING } from "./health";
import { LogLines } from "./logLines";
import type { DownloadJob } from "./modelText";
import { type CompletionOutcome, noSuggestionText } from "./outcome";
import type { SidecarStatus } from "./status";

/** When and how the editor asks for inline suggestions. */
export interface CompletionPolicy {
  debounceMs(): number;
  /** Why not to ask for this document or this kind of trigger (language setting, snooze, manual mode), or
   * undefined to ask. */
  whyNot(document: vscode.TextDocument, context: vscode.InlineCompletionContext): string | undefined;
  /** The user asked (Alt+\) and nothing came: say why. */
  nothingCame(why: string): void;
  /** Every request's outcome, as the sidecar tells it. */
  outcome(o: CompletionOutcome): void;
}

export class Sidecar implements vscode.Disposable {
  client: LanguageClient | undefined;
  private process: ChildProcess | undefined;
  private readonly downloadEvents = new vscode.EventEmitter<DownloadJob>();
  /** ryzanstein/download notifications: progress of model downloads. */
  readonly onDownload = this.downloadEvents.event;
  private readonly backoff = new RestartBackoff();
  private stopping = false;
  private gaveUp = false;
  private health: HealthMonitor | undefined;
  /** Per document: how its last completion request ended. */
  private readonly outcomes = new Map<string, CompletionOutcome>();

  constructor(
    private readonly python: string,
    private readonly cwd: string,
    private readonly output: vscode.LogOutputChannel,
    private readonly initOptions: () => Record<string, unknown>,
    private readonly policy: CompletionPolicy,
    private readonly onStatus: (s: SidecarStatus) => void,
  ) {}

  async start(): Promise<void> {
    this.stopping = false;
    // Started here rather than by the client, so its log lines reach the channel at their own level (the client
    // would show all of stderr as errors); the client gets the stdio streams.
    const serverOptions: ServerOptions = async (): Promise<StreamInfo> => {
      const proc = spawn(this.python, ["-m", "pyserver"], { cwd: this.cwd, env: process.env, stdio: "pipe" });
      const lines = new LogLines((level, msg) => this.output[level](msg));
      proc.stderr.setEncoding("utf8").on("data", (d: string) => lines.push(d));
      proc.on("error", (e) => this.output.error(`the sidecar could not run: ${e.message}`));
      proc.on("exit", (code, signal) => {
        lines.flush();
        this.output.info(`sidecar exited (${signal ?? `code ${code}`})`);
      });
      this.process = proc;
      return { reader: proc.stdout, writer: proc.stdin };
    };
    const clientOptions: LanguageClientOptions = {
      documentSelector: [{ scheme: "file" }, { scheme: "untitled" }],
      outputChannel: this.output,
      // The index files live in the extension's storage folder (its working directory too, see setup.ts).
      initializationOptions: { ryzanstein: { ...this.initOptions(), storagePath: this.cwd } },
      errorHandler: {
        error: () => ({ action: ErrorAction.Continue }),
        closed: () => {
          this.health?.dispose();
          if (!this.stopping) {
            this.scheduleRestart();
          }
          return { action: CloseAction.DoNotRestart, handled: true };
        },
      },
      middleware: {
        // Typing fast asks for many suggestions: wait a moment and skip the ones already out of date.
        provideInlineCompletionItems: async (document, position, context, token, next) => {
          const invoked = context.triggerKind === vscode.InlineCompletionTriggerKind.Invoke;
          const whyNot = this.policy.whyNot(document, context);
          if (whyNot !== undefined) {
            if (invoked) {
              this.policy.nothingCame(whyNot);
            }
            return null;
          }
          const delay = this.policy.debounceMs();
          if (delay > 0) {
            await new Promise((resolve) => setTimeout(resolve, delay));
          }
          if (token.isCancellationRequested) {
            return null;
          }
          const uri = document.uri.toString();
          this.outcomes.delete(uri);
          const items = await next(document, position, context, token);
          this.health?.answered();
          const empty = !items || (Array.isArray(items) ? items.length === 0 : items.items.length === 0);
          const outcome = this.outcomes.get(uri); // (the sidecar sends it before its answer)
          const why = outcome && noSuggestionText(outcome);
          if (invoked && empty && !token.isCancellationRequested) {
            this.policy.nothingCame(why ?? "no suggestion");
          }
          return items;
        },
        executeCommand: async (command, args, next) => {
          const result = await next(command, args);
          this.health?.answered();
          return result;
        },
      },
    };
    this.client = new LanguageClient("ryzanstein", "Ryzanstein", serverOptions, clientOptions);
    // (what the sidecar sends on its own also shows it hears: its event loop wrote it)
    this.client.onNotification("ryzanstein/status", (s: SidecarStatus) => {
      this.health?.answered();
      this.onStatus(s);
    });
    this.client.onNotification("ryzanstein/completion", (o: CompletionOutcome) => {
      this.outcomes.set(o.uri, o);
      if (this.outcomes.size > 64) {
        this.outcomes.delete(this.outcomes.keys().next().value as string);
      }
      this.policy.outcome(o);
    });
    this.client.onNotification("ryzanstein/download", (j: DownloadJob) => {
      this.health?.answered();
      this.downloadEvents.fire(j);
    });
    const client = this.client;
    await client.start();
    this.health?.dispose();
    this.health = new HealthMonitor(
      () => client.sendRequest(PING),
      (why) => this.deaf(why),
    ).start();
  }

  /** Alive but not answering: killed, so that the client sees it close and it restarts with the back-off. */
  private deaf(why: string): void {
    this.output.error(`${why}: restarting it`);
    const p = this.process;
    if (p && p.exitCode === null && p.signalCode === null) {
      p.kill("SIGKILL");
    }
  }

  private scheduleRestart(): void {
    const d = this.backoff.onCrash(Date.now());
    if (!d.restart) {
      if (!this.gaveUp) {
        this.gaveUp = true;
        this.onStatus({ state: "error", error: d.reason });
        void vscode.window
          .showErrorMessage(`Ryzanstein stopped: ${d.reason}. The log has the details.`, "Show Log", "Restart")
          .then((pick) => {
            if (pick === "Show Log") {
              this.output.show();
            } else if (pick === "Restart") {
              void this.restart();
            }
          });
      }
      return;
    }
    this.output.appendLine(`sidecar exited; restarting in ${d.delayMs} ms`);
    setTimeout(() => void this.start().catch((e) => this.output.appendLine(`restart failed: ${e}`)), d.delayMs);
  }

  async restart(): Promise<void> {
    this.backoff.reset();
    this.gaveUp = false;
    await this.stop();
    await this.start();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.health?.dispose();
    this.health = undefined;
    const c = this.client;
    this.client = undefined;
    if (c) {
      await c.stop(5000).catch(() => undefined);
    }
    const p = this.process;
    this.process = undefined;
    if (p && p.exitCode === null && p.signalCode === null) {
      p.kill(); // it did not exit after shutdown/exit
    }
  }

  dispose(): void {
    void this.stop();
  }
}
