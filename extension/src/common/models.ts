// The model manager: every registry model with what it needs and brings here, downloads with progress (MB, time
// left) in a cancellable notification, then the sidecar serves the new model without a restart; and a one-time
// notice when the setup recommends a model that is not here yet.

import * as vscode from "vscode";

import { type DownloadJob, type ModelRow, type ModelsTable, describeModel, modelStatus, progressText,
  recommendedAbsent, size } from "./modelText";
import type { Sidecar } from "./server";

const OFFERED = "ryzanstein.offeredRecommendedModel";

type Pick = vscode.QuickPickItem & { row?: ModelRow; tier?: string; file?: boolean };

export class ModelManager {
  constructor(private readonly ctx: vscode.ExtensionContext, private readonly sidecar: Sidecar) {}

  private async table(quiet = false): Promise<ModelsTable | undefined> {
    if (!this.sidecar.client) {
      if (!quiet) {
        void vscode.window.showWarningMessage("Ryzanstein: the sidecar is not running.");
      }
      return undefined;
    }
    return (await this.sidecar.client.sendRequest("workspace/executeCommand", {
      command: "ryzanstein.sidecar.models", arguments: [],
    })) as ModelsTable;
  }

  /** The "Choose Model or Tier…" picker. */
  async pick(): Promise<void> {
    const table = await vscode.window.withProgress({ location: vscode.ProgressLocation.Window,
      title: "Ryzanstein: looking for models" }, () => this.table());
    if (!table) {
      return;
    }
    const items: Pick[] = [{ label: "Automatic", description: "the tier the setup chose for this machine", tier: "auto" }];
    for (const [tier, rows] of Object.entries(table.tiers)) {
      items.push({ label: tier, kind: vscode.QuickPickItemKind.Separator });
      for (const row of rows) {
        items.push({ label: `${row.present || row.tier === "shipped" ? "$(check)" : "$(cloud-download)"} ${row.name}`,
          description: describeModel(row), detail: modelStatus(row, table.serving?.completion, table.would_choose.model),
          row });
      }
    }
    items.push({ label: "", kind: vscode.QuickPickItemKind.Separator });
    items.push({ label: "$(file) Choose a model file…", description: "a GGUF file or a checkpoint folder", file: true });
    const pick = await vscode.window.showQuickPick(items, { title: "Ryzanstein model", matchOnDescription: true,
      matchOnDetail: true });
    const cfg = vscode.workspace.getConfiguration("ryzanstein");
    if (!pick) {
      return;
    }
    if (pick.file) {
      const files = await vscode.window.showOpenDialog({ canSelectMany: false, canSelectFolders: true,
        filters: { GGUF: ["gguf"] } });
      if (files?.[0]) {
        await cfg.update("modelPath", files[0].fsPath, vscode.ConfigurationTarget.Global);
      }
      return;
    }
    const row = pick.row;
    if (row && !row.present && row.tier !== "shipped") {
      await this.download(row);
      return;
    }
    // A tier applies when no explicit model file is set.
    await cfg.update("modelPath", "", vscode.ConfigurationTarget.Global);
    await cfg.update("tier", row ? row.tier : pick.tier, vscode.ConfigurationTarget.Global);
  }

  /** Asks, downloads with progress, then serves the model's tier. */
  async download(row: ModelRow, confirm = true): Promise<void> {
    if (confirm) {
      const go = `Download (${size(row.approx_download_bytes)})`;
      const answer = await vscode.window.showInformationMessage(`Download ${row.name}?`,
        { modal: true, detail: `${describeModel(row)}. It goes to the Hugging Face cache; nothing else leaves or ` +
          "enters this machine. A cancelled download resumes where it stopped." }, go);
      if (answer !== go) {
        return;
      }
    }
    const job = await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, cancellable: true,
      title: `Ryzanstein: downloading ${row.name}` }, (progress, token) => new Promise<DownloadJob>((resolve) => {
      let shown = 0;
      const sub = this.sidecar.onDownload((j) => {
        if (j.id !== row.id) {
          return;
        }
        const pct = j.total ? (100 * j.done) / j.total : 0;
        progress.report({ message: progressText(j), increment: pct - shown });
        shown = pct;
        if (j.state !== "running") {
          sub.dispose();
          resolve(j);
        }
      });
      token.onCancellationRequested(() => void this.sidecar.client?.sendRequest("workspace/executeCommand", {
        command: "ryzanstein.sidecar.cancelDownload", arguments: [{ id: row.id }] }));
      void this.sidecar.client?.sendRequest("workspace/executeCommand", {
        command: "ryzanstein.sidecar.download", arguments: [{ id: row.id }] }).then(undefined, (e: unknown) => {
        sub.dispose();
        resolve({ id: row.id, state: "error", done: 0, total: 0, bytes_per_s: 0, eta_s: null, message: String(e),
          path: null });
      });
    }));
    if (job.state === "done") {
      const cfg = vscode.workspace.getConfiguration("ryzanstein");
      await cfg.update("modelPath", "", vscode.ConfigurationTarget.Global);
      await cfg.update("tier", row.tier, vscode.ConfigurationTarget.Global);
      void vscode.window.showInformationMessage(`Ryzanstein: ${row.name} is here and serves the ${row.tier} tier now.`);
    } else if (job.state === "cancelled") {
      void vscode.window.showInformationMessage(`Ryzanstein: download of ${row.name} cancelled; choosing it again resumes it.`);
    } else {
      void vscode.window.showErrorMessage(`Ryzanstein: could not download ${row.name}: ${job.message}`);
    }
  }

  /** Once: what serves now, and what the recommended tier would bring; only once the setup has measured this
   * machine (it does so when the user first pauses), so the offer rests on this machine's speed, not a guess. */
  async offerOnce(triesLeft = 30): Promise<void> {
    if (this.ctx.globalState.get<boolean>(OFFERED)) {
      return;
    }
    const table = await this.table(true).catch(() => undefined);
    if (table && table.measured === false && triesLeft > 0) {
      setTimeout(() => void this.offerOnce(triesLeft - 1).catch(() => undefined), 60_000);
      return;
    }
    const row = table && recommendedAbsent(table);
    if (!row) {
      return;
    }
    await this.ctx.globalState.update(OFFERED, true);
    const go = `Download (${size(row.approx_download_bytes)})`;
    const answer = await vscode.window.showInformationMessage(
      `Ryzanstein serves its small built-in model for now. ${row.name} (${row.tier}) is what this machine can run ` +
      `best: ~${row.predicted_tokens_per_s.toFixed(0)} tokens/s, needs ${size(row.resident_bytes)} of RAM.`,
      go, "Not now", "Don't ask again");
    if (answer === go) {
      await this.download(row, false);
    }
  }
}
