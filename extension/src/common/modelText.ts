// How the model manager describes models and downloads (kept apart from VS Code so tests can run it).

/** A row of the sidecar's `ryzanstein.sidecar.models` table (pyserver/tiers/setup.py: models_table). */
export interface ModelRow {
  id: string;
  tier: string;
  name: string;
  approx_download_bytes: number;
  resident_bytes: number;
  predicted_tokens_per_s: number;
  fits_ram: boolean;
  fast_enough_for_completions: boolean;
  present: boolean;
  path: string | null;
  /** a typical completion's predicted latency here, and that over the latency budget (pyserver/tiers/selection.py) */
  predicted_completion_ms?: number;
  over_budget?: number;
  /** when it does not fit this machine: the model nearest it in size that does */
  closest_fit?: string | null;
}

export interface ModelsTable {
  tiers: Record<string, ModelRow[]>;
  /** first_download: while only the shipped model serves completions, the smallest download that would (selection.py) */
  would_choose: { tier: string | null; model: string | null; use_now: string | null; first_download?: string | null };
  serving?: { completion: string | null };
  /** false while the speeds are the provisional guess made before the setup measured this machine */
  measured?: boolean;
  downloads?: DownloadJob[];
}

export interface DownloadJob {
  id: string;
  state: "running" | "done" | "cancelled" | "error";
  done: number;
  total: number;
  bytes_per_s: number;
  eta_s: number | null;
  message: string;
  path: string | null;
}

export function size(bytes: number): string {
  return bytes >= 1e9 ? `${(bytes / 1e9).toFixed(1)} GB` : `${Math.max(1, Math.round(bytes / 1e6))} MB`;
}

function duration(s: number): string {
  return s >= 90 ? `${Math.round(s / 60)} min` : `${Math.max(1, Math.round(s))} s`;
}

/** "3B · 1.2 GB download · needs 1.8 GB RAM · ~10 tokens/s here" */
export function describeModel(m: ModelRow): string {
  const parts = [m.tier];
  if (m.tier !== "shipped") {
    parts.push(`${size(m.approx_download_bytes)} download`);
  }
  parts.push(`needs ${size(m.resident_bytes)} RAM${m.fits_ram ? "" : " (more than this machine can spare)"}`);
  parts.push(`~${m.predicted_tokens_per_s >= 100 ? Math.round(m.predicted_tokens_per_s) : m.predicted_tokens_per_s.toFixed(1)} tokens/s here`);
  return parts.join(" · ");
}

/** "here" / "not downloaded", plus what it means for this machine. */
export function modelStatus(m: ModelRow, serving: string | null | undefined, recommended: string | null): string {
  const state = m.present || m.tier === "shipped" ? "here" : "not downloaded";
  const notes = [state];
  if (serving && (m.path?.endsWith(serving) || (m.tier === "shipped" && serving.startsWith(m.id)))) {
    notes.push("serving now");
  }
  if (m.id === recommended) {
    notes.push("recommended for this machine");
  }
  if (!m.fast_enough_for_completions && m.tier !== "shipped") {
    const by = m.predicted_completion_ms != null && m.over_budget != null
      ? ` (~${Math.round(m.predicted_completion_ms)} ms a completion, ${m.over_budget.toFixed(1)}x the budget` +
        `${m.closest_fit ? `; the closest that fits: ${m.closest_fit}` : ""})`
      : "";
    notes.push(`too slow here for inline completions${by}: refactors and explanations`);
  }
  return notes.join(" · ");
}

/** "512 MB of 1.2 GB · 2 min left" */
export function progressText(job: DownloadJob): string {
  const got = job.total ? `${size(job.done)} of ${size(job.total)}` : size(job.done);
  return job.eta_s != null && job.state === "running" ? `${got} · ${duration(job.eta_s)} left` : got;
}

/** The tier the setup recommends when its model is not here yet (what the first-run notice offers). */
export function recommendedAbsent(t: ModelsTable): ModelRow | undefined {
  const id = t.would_choose.first_download ?? t.would_choose.model;
  if (!id || (id === t.would_choose.model && t.would_choose.tier === "shipped")) {
    return undefined;
  }
  const row = Object.values(t.tiers).flat().find((m) => m.id === id);
  return row && !row.present ? row : undefined;
}
