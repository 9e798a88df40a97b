"""Which tier this machine should run, and which model serves which task.

Setup picks the largest tier with a model that fits the RAM budget (weights + KV cache, leaving room for the editor)
and whose predicted decode speed (measured bandwidth x the engine's measured efficiency / bytes read per token)
meets the completion latency budget. Per task: completions go to the fastest model meeting that budget, refactors
and explanations to the largest available one."""

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
    return eff * hw.bandwidth_gbs * 1e9 / spec.shape.bytes_per_token()


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
        if m.id in hw.observed_tps and m.shape.bytes_per_token() >= CORRECTION_MIN_BYTES and roofline_tps(m, hw) > 0
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

    def to_json(self) -> dict[str, Any]:
        return {
            "tier": self.tier,
            "model": self.model,
            "use_now": self.use_now,
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
        resident = spec.shape.resident_bytes(min(spec.context_length, COMPLETION_CTX))
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
    return min(real, key=lambda c: c.spec.shape.bytes_per_token())


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
            why.append(f"~{c.latency_ms:.0f} ms a completion ({c.prefill_tps:.0f} prefill, {c.tps:.0f} decode tok/s)")
        verdict = "fits" if not why else "too " + ("large" if not c.fits_ram else "slow") + f" ({', '.join(why)})"
        reasons.append(f"{c.spec.tier} {c.spec.id}: {verdict}{'' if c.present else ', not downloaded'}")
    ready = [c for c in good if c.present]
    now = max(ready, key=lambda c: (TIER_ORDER.index(c.spec.tier), -cands.index(c)))
    if now is not best:
        reasons.append(
            f"until {best.spec.id} is downloaded (`python -m pyserver download {best.spec.id}`), {now.spec.id} serves"
        )
    completion = completion_candidate(ready)
    large = [c for c in cands if c.present and c.fits_ram and c.tps >= REFACTOR_MIN_TPS]
    biggest = max(large, key=lambda c: (TIER_ORDER.index(c.spec.tier), c.spec.shape.n_params))
    reasons.append(f"completions: {completion.spec.id}; refactors and explanations: {biggest.spec.id}")
    return Decision(best.spec.tier, best.spec.id, now.spec.id, completion.spec.id, biggest.spec.id, reasons, cands)
