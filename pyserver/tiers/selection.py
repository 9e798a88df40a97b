"""Which tier this machine should run, and which model serves which task.

Setup picks the largest tier with a model that fits the RAM budget (weights + KV cache, leaving room for the editor)
and whose predicted decode speed (measured bandwidth x the engine's measured efficiency / bytes read per token)
meets the completion latency budget. Per task: completions go to the fastest model meeting that budget, refactors
and explanations to the best available model of the largest tier. While only the shipped model is here, the smallest
download that would serve completions (Ternary-Bonsai-1.7B wherever it fits) is offered first."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pyserver.tiers.hardware import GIB, HardwareProfile
from pyserver.tiers.registry import TIER_ORDER, ModelSpec, Registry

EDITOR_HEADROOM = 2 * GIB  # VS Code, the language servers, the browser next to it
MAX_RAM_SHARE = 0.6  # never plan to take more than this share of the machine's memory
# A completion of ~12 tokens should take well under a second of decode: 20 tokens/s.
COMPLETION_MIN_TPS = 20.0  # (kept for refactors' streaming and the observed-speed correction)
# A completion's predicted latency: the prompt tokens the cache does not hold (typing along and down lines: a few
# per request, a whole line now and then) at the prefill speed, plus a single-line suggestion at the decode speed.
# A tier serves completions when that stays within 600 ms (decode alone used to ask for 20 tokens/s: 12 tokens
# in 600 ms).
EXPECTED_NEW_PROMPT_TOKENS = 16
EXPECTED_OUTPUT_TOKENS = 12
COMPLETION_LATENCY_MS = 600.0
COLD_PROMPT_TOKENS = 1024  # a whole prompt (settings.maxPromptTokens): what a warm-up must prefill
REFACTOR_MIN_TPS = 4.0  # refactors stream into a progress notification; slower is still useful
COMPLETION_CTX = 2048  # KV cache the completion session keeps


def ram_budget(hw: HardwareProfile) -> int:
    return max(0, min(hw.available_ram - EDITOR_HEADROOM, int(MAX_RAM_SHARE * hw.total_ram)))


# Models reading less than this per token run from the caches: their observed speed says nothing about the
# bandwidth-bound tiers (the shipped model reads ~1 MB).
CORRECTION_MIN_BYTES = 64 << 20


def roofline_tps(spec: ModelSpec, hw: HardwareProfile, efficiency: float | None = None) -> float:
    """Decode tokens/s from the bandwidth roofline: efficiency (the profile's, unless given) x bandwidth / bytes
    read per token."""
    eff = hw.efficiency if efficiency is None else efficiency
    return eff * hw.bandwidth_gbs * 1e9 / spec.bytes_per_token()


def predicted_tps(spec: ModelSpec, hw: HardwareProfile, efficiency: float | None = None) -> float:
    """Decode tokens/s: the median speed seen in use for this model when there is one (hardware.record_observed),
    else the roofline prediction (with the efficiency given, else the profile's)."""
    if efficiency is None and spec.id in hw.observed_tps:
        return hw.observed_tps[spec.id]
    return roofline_tps(spec, hw, efficiency)


def prefill_tps(spec: ModelSpec, hw: HardwareProfile) -> float:
    """Prefill tokens/s: the profile's measured MAC rate over the model's projections."""
    return hw.prefill_gmacs * 1e9 / max(1, spec.shape.ternary_params)


def completion_latency_ms(spec: ModelSpec, hw: HardwareProfile, decode_tps: float) -> float:
    """A typical completion's latency: EXPECTED_NEW_PROMPT_TOKENS of prefill, EXPECTED_OUTPUT_TOKENS of decode."""
    return 1e3 * (EXPECTED_NEW_PROMPT_TOKENS / prefill_tps(spec, hw) + EXPECTED_OUTPUT_TOKENS / max(decode_tps, 1e-9))


def corrected_efficiency(registry: Registry, hw: HardwareProfile) -> float:
    """The profile's efficiency scaled by how the speeds seen in use (bandwidth-bound models only) compare with
    their prediction: the correction for the models not yet used on this machine."""
    ratios = [
        hw.observed_tps[m.id] / roofline_tps(m, hw)
        for m in registry.models
        if m.id in hw.observed_tps and m.bytes_per_token() >= CORRECTION_MIN_BYTES and roofline_tps(m, hw) > 0
    ]
    if not ratios:
        return hw.efficiency
    ratios.sort()
    mid = len(ratios) // 2
    median = ratios[mid] if len(ratios) % 2 else (ratios[mid - 1] + ratios[mid]) / 2
    return min(1.0, hw.efficiency * median)


@dataclass
class Candidate:
    spec: ModelSpec
    resident_bytes: int
    tps: float
    fits_ram: bool
    fast_enough: bool
    present: bool
    seen_in_use: bool = False  # tps is the median decode speed observed, not a prediction
    prefill_tps: float = 0.0
    latency_ms: float = 0.0  # a typical completion's, predicted (completion_latency_ms)
    closest_fit: str | None = None  # when this one does not fit: the largest model that does (choose)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.spec.id,
            "tier": self.spec.tier,
            "resident_gib": round(self.resident_bytes / GIB, 2),
            "predicted_tokens_per_s": round(self.tps, 1),
            "predicted_prefill_tokens_per_s": round(self.prefill_tps, 1),
            "predicted_completion_ms": round(self.latency_ms),
            "whole_prompt_warm_up_s": round(COLD_PROMPT_TOKENS / max(self.prefill_tps, 1e-9), 1),
            "speed_seen_in_use": self.seen_in_use,
            "fits_ram": self.fits_ram,
            "fast_enough_for_completions": self.fast_enough,
            "over_budget": round(self.latency_ms / COMPLETION_LATENCY_MS, 2),  # the predicted latency / the budget
            "closest_fit": self.closest_fit,
            "present": self.present,
        }


@dataclass
class Decision:
    tier: str  # the tier this machine should run (whether or not it is downloaded)
    model: str  # its best model
    use_now: str  # the best model that fits and is present now
    completion_model: str
    refactor_model: str
    reasons: list[str] = field(default_factory=list)
    candidates: list[Candidate] = field(default_factory=list)
    # While only the shipped model serves completions: the smallest download that would serve them here (what the
    # first-run notice offers; Ternary-Bonsai-1.7B wherever it fits), else None.
    first_download: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "tier": self.tier,
            "model": self.model,
            "use_now": self.use_now,
            "first_download": self.first_download,
            "completion_model": self.completion_model,
            "refactor_model": self.refactor_model,
            "reasons": self.reasons,
            "candidates": [c.to_json() for c in self.candidates],
        }


def evaluate(
    registry: Registry, hw: HardwareProfile, present: Iterable[str] = (), efficiency: float | None = None
) -> list[Candidate]:
    """Every registry model on this machine. Speeds: as seen in use where known, else predicted with the given
    efficiency, else with the profile's corrected by the speeds seen for the other models."""
    have = set(present) | {m.id for m in registry.tier("shipped")}
    budget = ram_budget(hw)
    corrected = corrected_efficiency(registry, hw) if efficiency is None else efficiency
    out = []
    for spec in registry.models:
        resident = spec.resident_bytes(min(spec.context_length, COMPLETION_CTX))
        seen = efficiency is None and spec.id in hw.observed_tps
        tps = predicted_tps(spec, hw) if seen else roofline_tps(spec, hw, corrected)
        latency = completion_latency_ms(spec, hw, tps)
        out.append(
            Candidate(
                spec,
                resident,
                tps,
                resident <= budget,
                latency <= COMPLETION_LATENCY_MS,
                spec.id in have,
                seen,
                prefill_tps(spec, hw),
                latency,
            )
        )
    return out


def completion_candidate(ready: list[Candidate]) -> Candidate:
    """Completions: the fastest present model that meets the latency budget. The shipped model only when no
    published tier qualifies: it is the fallback that needs nothing, the larger tiers answer uncertain cases
    (escalation)."""
    real = [c for c in ready if c.spec.tier != "shipped"] or ready
    return min(real, key=lambda c: c.spec.bytes_per_token())


def _closest_fit(c: Candidate, good: list[Candidate]) -> str | None:
    """Of the models that fit this machine, the one nearest `c` in size (the largest not above it, else the
    smallest above it)."""
    below = [g for g in good if g.spec.shape.n_params <= c.spec.shape.n_params and g is not c]
    if below:
        return max(below, key=lambda g: g.spec.shape.n_params).spec.id
    above = [g for g in good if g is not c]
    return min(above, key=lambda g: g.spec.shape.n_params).spec.id if above else None


def choose(
    registry: Registry, hw: HardwareProfile, present: Iterable[str] = (), efficiency: float | None = None
) -> Decision:
    cands = evaluate(registry, hw, present, efficiency)
    given = efficiency
    efficiency = corrected_efficiency(registry, hw) if efficiency is None else efficiency
    budget = ram_budget(hw)
    source = "measured" if hw.measured else "default, not yet measured here"
    if given is None and efficiency != hw.efficiency:
        source = f"{hw.efficiency:.2f} measured, corrected by the speeds seen in use"
    reasons = [
        f"RAM budget {budget / GIB:.1f} GiB (available {hw.available_ram / GIB:.1f} GiB minus "
        f"{EDITOR_HEADROOM / GIB:.0f} GiB for the editor, at most {MAX_RAM_SHARE:.0%} of "
        f"{hw.total_ram / GIB:.1f} GiB)",
        f"predicted decode = {efficiency:.2f} ({source}) x {hw.bandwidth_gbs:.1f} GB/s / bytes per token; "
        f"prefill = {hw.prefill_gmacs:.0f} GMAC/s measured / the projections' parameters; a completion = "
        f"{EXPECTED_NEW_PROMPT_TOKENS} new prompt tokens of prefill + {EXPECTED_OUTPUT_TOKENS} of decode, "
        f"at most {COMPLETION_LATENCY_MS:.0f} ms to serve completions",
    ]
    if given is None:
        seen = [f"{m.id} {hw.observed_tps[m.id]:.1f}" for m in registry.models if m.id in hw.observed_tps]
        if seen:
            reasons.append(f"decode speeds seen in use (tokens/s, median): {', '.join(seen)}")
    good = [c for c in cands if c.fits_ram and c.fast_enough]
    best = max(good, key=lambda c: (TIER_ORDER.index(c.spec.tier), -cands.index(c)))
    for c in cands:
        if c.spec.tier == "shipped":
            continue
        why = []
        if not c.fits_ram:
            why.append(f"needs {c.resident_bytes / GIB:.1f} GiB")
        if not c.fast_enough:
            why.append(
                f"~{c.latency_ms:.0f} ms a completion, {c.latency_ms / COMPLETION_LATENCY_MS:.1f}x the "
                f"{COMPLETION_LATENCY_MS:.0f} ms budget ({c.prefill_tps:.0f} prefill, {c.tps:.0f} decode tok/s)"
            )
        verdict = "fits" if not why else "too " + ("large" if not c.fits_ram else "slow") + f" ({', '.join(why)})"
        if why:
            c.closest_fit = _closest_fit(c, good)
            verdict += f"; the closest that fits: {c.closest_fit}" if c.closest_fit else ""
        reasons.append(f"{c.spec.tier} {c.spec.id}: {verdict}{'' if c.present else ', not downloaded'}")
    ready = [c for c in good if c.present]
    now = max(ready, key=lambda c: (TIER_ORDER.index(c.spec.tier), -cands.index(c)))
    if now is not best:
        reasons.append(
            f"until {best.spec.id} is downloaded (`python -m pyserver download {best.spec.id}`), {now.spec.id} serves"
        )
    completion = completion_candidate(ready)
    large = [c for c in cands if c.present and c.fits_ram and c.tps >= REFACTOR_MIN_TPS]
    # The largest tier's best present model (each tier lists its models best first: Ternary-Bonsai before the
    # larger general checkpoints with no code score).
    biggest = max(large, key=lambda c: (TIER_ORDER.index(c.spec.tier), -cands.index(c)))
    first = first_download(completion, good)
    if first is not None:
        reasons.append(
            f"first download: {first.spec.id} ({first.spec.download_bytes() / 1e9:.2f} GB, ~{first.latency_ms:.0f} ms "
            f"a completion here): the smallest that serves completions on this machine "
            f"(`python -m pyserver download {first.spec.id}`)"
        )
    reasons.append(f"completions: {completion.spec.id}; refactors and explanations: {biggest.spec.id}")
    return Decision(
        best.spec.tier,
        best.spec.id,
        now.spec.id,
        completion.spec.id,
        biggest.spec.id,
        reasons,
        cands,
        first.spec.id if first is not None else None,
    )


def first_download(completion: Candidate, good: list[Candidate]) -> Candidate | None:
    """While the shipped model serves completions: of the published models that fit and meet the latency budget,
    the smallest download (the one that makes suggestions useful soonest; the tier's best may be larger and is
    offered beside it). None once a published model serves completions, or when none qualifies."""
    if completion.spec.tier != "shipped":
        return None
    published = [c for c in good if c.spec.tier != "shipped" and not c.present]
    return min(published, key=lambda c: c.spec.download_bytes(), default=None)
