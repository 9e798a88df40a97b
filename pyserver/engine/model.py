"""The engine's Python face: `Model.load(path)` and `Session`s that own a KV cache.

Loading turns any supported file into `ModelWeights` (see the loaders), then hands the packed ternary tensors to the
native model, copied once into huge-page-backed memory (file mappings get no huge pages on common kernels, and
the decode loop streams every weight byte per token), repacked on the way into the decode layout (I2_S4) where a
tensor has one scale. The output head is quantized here (4-bit rows where n_embd allows, else int8).

Nothing here points into the model file: the loaders read every tensor into memory this process owns (no memory
map; see gguf_file.py), so a file truncated or rewritten while the model is loaded cannot crash the process. Every
header field was checked by the loaders before native code sees a byte; what the native model still refuses is a
`ModelLoadError` too.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pyserver import native
from pyserver.engine.config import ModelConfig
from pyserver.engine.errors import ModelLoadError
from pyserver.engine.tokenizer import Tokenizer
from pyserver.engine.weights import FLOAT_TABLE_TYPES, FloatTable, ModelWeights, TernaryTensor

HEAD_KINDS = ("auto", "int4", "int8", "f32")
# Weight layouts: "auto" (the autotuner's measured choice per shape, engine/autotune.py), "decode" (I2_S4 wherever
# a tensor has one scale), "rows16" (I2_R16 everywhere), "file" (the file's packing). RYZANSTEIN_LAYOUT sets the
# default. Tensors whose scales vary inside a row (group-scaled Q2_0, Bonsai's TQ repacks) always run in I2_R16_G*,
# and so does every tensor of a model with per-block activations: the only layout with SIMD kernels for them.
LAYOUTS = ("auto", "decode", "rows16", "file")
# Top candidates of a quantized head recomputed from the stored table, per token. Greedy output then follows the
# full-precision head whenever its best token is among them; the rows cost a few hundred KB per token at most.
RESCORE_K = {"int4": 32, "int8": 8}
PREFILL_CHUNK = 256  # tokens per native call while prefilling: bounds scratch memory, lets cancel act in between


@dataclass(frozen=True)
class LoadStats:
    seconds: float
    weight_bytes: int  # packed ternary projections
    head_bytes: int
    embedding_bytes: int

    @property
    def bytes_per_token(self) -> int:
        """Weight bytes a decode step reads (all projections and the head; one embedding row is negligible)."""
        return self.weight_bytes + self.head_bytes


@dataclass(frozen=True)
class TensorStats:
    """One projection as loaded: its packing in the file, the layout it runs in, and its trits."""

    name: str  # e.g. blk.3.ffn_up
    fmt: str  # the file's packing
    packing: str  # what the kernels read: I2_S4 (the decode layout) or the file's packing
    minus: int
    zero: int
    plus: int

    @property
    def zero_fraction(self) -> float:
        return self.zero / max(1, self.minus + self.zero + self.plus)

    @property
    def trit_entropy(self) -> float:
        """Entropy of the weights' distribution over {-1, 0, +1}, in bits (at most log2(3) = 1.585)."""
        p = np.array([self.minus, self.zero, self.plus], np.float64)
        p = p[p > 0] / max(1.0, p.sum())
        return float(-(p * np.log2(p)).sum())


COARSE_GROUP = 256  # weights scaled this coarsely (TQ2_0, TQ1_0) take the longer activation block


def _act_block(config: ModelConfig, targets: list[str]) -> int:
    """The activations' block (config.py): act_block, or act_block_max when every projection's weight scales
    cover COARSE_GROUP columns or more (a packing without a group has one scale per tensor). Q2_0 files (the
    models' own packing) keep per 32, as llama.cpp's q8_0 path does: per 64 was measured to lose more to the exact
    model than llama.cpp's own run (0.9973 vs 0.9991) for little speed. TQ2_0 files, already requantized per 256
    and run by llama.cpp with activations per 256 (q8_K), take 128: still closer to the exact model than llama.cpp
    there, and 1.5-2x faster on AVX2."""
    block, most = config.act_block, config.act_block_max
    coarse = all(native.SCALE_GROUP.get(t, COARSE_GROUP) >= COARSE_GROUP for t in targets)
    return most if block and most > block and targets and coarse else block


def _targets(tensors: list[TernaryTensor], layout: str, act_block: int) -> list[str]:
    """The packing each tensor runs in: its file's, I2_S4 or its I2_R16 layout (by the rules in LAYOUTS)."""
    r16 = [native.r16_target(t.fmt, t.data, t.rows, t.cols) if t.fmt != "I2_S4" else "" for t in tensors]
    one_scale = [t.fmt == "I2_S4" or target == "I2_R16" for t, target in zip(tensors, r16)]
    if act_block or layout == "rows16":
        return [target or "I2_S4" for target in r16]  # I2_S4 tensors (given as such) keep their layout
    chosen: dict[tuple[str, int, int], str] = {}
    if layout == "auto":
        from pyserver.engine.autotune import choose

        shapes = {(t.fmt, t.rows, t.cols) for t, one in zip(tensors, one_scale) if one and t.fmt != "I2_S4"}
        choices = choose(shapes, str(native.cpu_info()["auto"]))
        chosen = {shape: c.layout for shape, c in choices.items()}
    out = []
    for t, target, one in zip(tensors, r16, one_scale):
        if t.fmt == "I2_S4" or (layout == "file" and t.fmt in native.SIMD_GEMV_FORMATS):
            out.append(t.fmt)
        elif not one:
            out.append(target)  # group scales: I2_R16_G*
        else:
            pick = "decode" if layout == "decode" else chosen.get((t.fmt, t.rows, t.cols), "decode")
            out.append({"file": t.fmt, "decode": "I2_S4", "rows16": target}[pick])
    return out


def _repack(t: TernaryTensor, target: str, out: np.ndarray) -> tuple[int, int, int] | None:
    """Writes t in the target packing into out; its trit counts, or None if it cannot (the tensor keeps its own)."""
    if target == "I2_S4":
        return native.repack_i2s4(t.fmt, t.data, t.rows, t.cols, out)
    return native.repack_r16(t.fmt, t.data, t.rows, t.cols, out)[1]


def _copy_to_weight_memory(
    tensors: list[TernaryTensor], names: list[str], targets: list[str]
) -> tuple[np.ndarray, list[TensorStats]]:
    """Copies every packed tensor into one huge-page-advised buffer (64-byte aligned each) and repoints them,
    repacked on the way into its target packing where that is not the file's (I2_S4: rows interleaved in fours,
    read as one sequential stream per group; I2_R16: 16 rows interleaved for the outer-product kernels). Returns the
    buffer and each tensor's trit counts (counted while repacking, else read from the packed bytes)."""
    sizes = [max(t.data.nbytes, native.packed_nbytes(target, t.rows, t.cols)) for t, target in zip(tensors, targets)]
    offsets = np.concatenate([[0], np.cumsum([(n + 63) // 64 * 64 for n in sizes])]).astype(int)
    buf = native.alloc_weights(max(int(offsets[-1]), 1))
    stats = []
    for t, name, off, target in zip(tensors, names, offsets[:-1], targets):
        fmt, counts = t.fmt, None
        if target != t.fmt:
            out = buf[off : off + native.packed_nbytes(target, t.rows, t.cols)]
            counts = _repack(t, target, out)
            if counts is not None:
                t.fmt, t.data = target, out
        if counts is None:
            dst = buf[off : off + t.data.nbytes]
            dst[:] = t.data
            t.data = dst
            counts = native.trit_counts(t.fmt, t.data, t.rows, t.cols)
        stats.append(TensorStats(name, fmt, t.fmt, *counts))
    return buf, stats


def _set_layers(nm: native.Model, weights: ModelWeights) -> None:
    for i, layer in enumerate(weights.layers):
        for name, w in layer.norms.items():
            nm.set_norm(i, name, np.ascontiguousarray(w, dtype=np.float32))
        for name, t in layer.linears.items():
            nm.set_linear(i, name, t.fmt, t.data, t.rows, t.cols, t.scale)
    nm.set_norm(-1, "output_norm", np.ascontiguousarray(weights.output_norm, dtype=np.float32))


def _set_head(nm: native.Model, table: FloatTable, head: str, ternary: TernaryTensor | None) -> int:
    """Quantizes the output table into the native model's head (int4/int8 rows, with the stored table kept for
    rescoring the top candidates when it is plain floats), or hands it over as f32; a ternary head (its packed
    tensor, already in its run-time layout) runs on the projections' kernels. Returns the head's bytes."""
    if ternary is not None:
        nm.set_head_ternary(ternary.fmt, ternary.data, ternary.rows, ternary.cols)
        return int(ternary.data.nbytes)
    if head == "f32":
        f = np.concatenate([rows for _, rows in table.chunks()]) if table.rows else np.zeros((0, table.cols))
        nm.set_head_f32(np.ascontiguousarray(f, dtype=np.float32))
        return int(f.nbytes)
    exact = table.data if table.type_name in FLOAT_TABLE_TYPES and table.data.dtype == np.uint8 else None
    int4 = head == "int4"
    width = table.cols // 2 if int4 else table.cols
    q: np.ndarray = native.alloc_weights(table.rows * width).view(np.uint8 if int4 else np.int8)
    q = q.reshape(table.rows, width)
    scales = np.empty(table.rows, np.float32)
    quantize = native.quantize_weight_rows_i4 if int4 else native.quantize_weight_rows
    for start, rows in table.chunks():
        q[start : start + len(rows)], scales[start : start + len(rows)] = quantize(rows)
    k = RESCORE_K[head] if exact is not None else 0
    (nm.set_head_int4 if int4 else nm.set_head_int8)(q, scales, exact, table.type_name, k)
    return int(q.nbytes + scales.nbytes)


class Model:
    def __init__(
        self,
        weights: ModelWeights,
        tokenizer: Tokenizer | None,
        path: Path,
        head: str = "auto",
        copy_weights: bool = True,
        layout: str | None = None,
    ) -> None:
        if head not in HEAD_KINDS:
            raise ValueError(f"head must be one of {HEAD_KINDS}, got {head!r}")
        layout = layout or os.environ.get("RYZANSTEIN_LAYOUT", "auto")
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
        t0 = time.perf_counter()
        self.path = path
        self.config: ModelConfig = weights.config
        self.tokenizer = tokenizer
        self.traits = weights.traits
        if head == "auto":  # 4-bit where the rows allow it: the head is the largest single read of a decode step
            head = "int4" if self.config.n_embd % 64 == 0 else "int8"
        self._weights = weights
        linears = [t for layer in weights.layers for t in layer.linears.values()]
        names = [f"blk.{i}.{n}" for i, layer in enumerate(weights.layers) for n in layer.linears]
        head_ternary = weights.output_ternary
        if head_ternary is not None:  # a ternary head runs in a projection's layout (not counted in tensor_stats)
            head_ternary = TernaryTensor(head_ternary.fmt, head_ternary.data, head_ternary.rows, head_ternary.cols)
        self._weight_buffer: np.ndarray | None = None
        self._head_buffer: np.ndarray | None = None
        self.tensor_stats: list[TensorStats] = []  # empty when the weights are used in place (copy_weights=False)
        act_block = int(getattr(self.config, "act_block", 0))
        try:
            if copy_weights:
                targets = _targets(linears, layout, act_block)
                self._weight_buffer, self.tensor_stats = _copy_to_weight_memory(linears, names, targets)
                if head_ternary is not None:
                    target = _targets([head_ternary], "rows16", act_block)[0]
                    self._head_buffer, _ = _copy_to_weight_memory([head_ternary], ["output"], [target])
                    targets.append(target)
                self.config = self.config.with_(act_block=_act_block(self.config, targets))
            nm = native.Model(self.config.native())
            _set_layers(nm, weights)
            head_bytes = _set_head(nm, weights.output or weights.token_embd, head, head_ternary)
            nm.check_complete()
        except ModelLoadError:
            raise
        except ValueError as exc:
            raise ModelLoadError(path, str(exc)) from exc
        self.native = nm
        self.stats = LoadStats(
            seconds=time.perf_counter() - t0,
            weight_bytes=sum(t.data.nbytes for t in linears),
            head_bytes=head_bytes,
            embedding_bytes=int(weights.token_embd.data.nbytes),
        )

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], head: str = "auto", copy_weights: bool = True, layout: str | None = None
    ) -> Model:
        """Loads a GGUF file or a Hugging Face safetensors directory."""
        from pyserver.engine.loaders import load_weights

        t0 = time.perf_counter()
        p = Path(path)
        weights, tokenizer = load_weights(p)
        model = cls(weights, tokenizer, p, head=head, copy_weights=copy_weights, layout=layout)
        model.stats = LoadStats(
            time.perf_counter() - t0, model.stats.weight_bytes, model.stats.head_bytes, model.stats.embedding_bytes
        )
        return model

    def embed(self, tokens: Sequence[int]) -> np.ndarray:
        ids = np.asarray(tokens, dtype=np.int64)
        if ids.size and (ids.min() < 0 or ids.max() >= self.config.vocab):
            raise ValueError(f"token id out of range [0, {self.config.vocab})")
        return self._weights.token_embd.take(ids)

    def session(self, n_ctx: int | None = None) -> Session:
        return Session(self, n_ctx or min(self.config.context_length, 4096))


class Session:
    """One sequence and its KV cache. `eval` reuses the longest common prefix with what is already cached, so
    re-evaluating a prompt after the user typed one more character costs a few tokens, not the whole prompt."""

    def __init__(self, model: Model, n_ctx: int) -> None:
        self.model = model
        self.cache = native.KvCache(model.native, n_ctx)
        self.tokens: list[int] = []
        self._last_logits: np.ndarray | None = None  # logits after self.tokens[-1]
        self.cancel = native.CancelFlag()
        # A smaller model's session with the same tokenizer: generation on this session then drafts with it and
        # verifies in batches (pyserver/engine/speculative.py), with the same tokens as without.
        self.draft: Session | None = None
        self.draft_k = 1

    @property
    def n_ctx(self) -> int:
        return int(self.cache.n_ctx)

    def truncate(self, n: int) -> None:
        n = max(0, min(n, len(self.tokens)))
        if n < len(self.tokens):
            self.cache.n_past = n
            del self.tokens[n:]
            self._last_logits = None

    def append(
        self, tokens: Sequence[int], n_logits: int = 1, cancel: native.CancelFlag | None = None
    ) -> np.ndarray | None:
        """Evaluates tokens after the cached ones. Returns logits [n_logits, vocab] for the last n_logits of them,
        or None if the cancel flag (the session's, unless another is given) was set (the cache then holds what was
        finished, whole chunks only)."""
        flag = self.cancel if cancel is None else cancel
        tokens = [int(t) for t in tokens]
        if not tokens:
            raise ValueError("append needs at least one token")
        if len(self.tokens) + len(tokens) > self.n_ctx:
            raise ValueError(f"context is full: {len(self.tokens)} cached + {len(tokens)} new > {self.n_ctx}")
        n_logits = max(0, min(n_logits, len(tokens)))
        out: list[np.ndarray] = []
        for start in range(0, len(tokens), PREFILL_CHUNK):
            chunk = tokens[start : start + PREFILL_CHUNK]
            remaining_after = len(tokens) - start - len(chunk)
            want = max(0, min(len(chunk), n_logits - remaining_after))
            logits = self.model.native.forward(self.cache, self.model.embed(chunk), want, flag)
            if logits is None:
                return None
            self.tokens.extend(chunk)
            if want:
                out.append(logits)
        result = np.concatenate(out) if out else np.zeros((0, self.model.config.vocab), np.float32)
        self._last_logits = result[-1].copy() if n_logits else None
        return result

    def eval(self, prompt: Sequence[int]) -> np.ndarray | None:
        """Logits [vocab] after the whole prompt, reusing the cached common prefix. None if cancelled."""
        prompt = [int(t) for t in prompt]
        if not prompt:
            raise ValueError("eval needs at least one token")
        common = 0
        for a, b in zip(self.tokens, prompt):
            if a != b:
                break
            common += 1
        if common == len(prompt) == len(self.tokens) and self._last_logits is not None:
            return self._last_logits.copy()
        self.truncate(min(common, len(prompt) - 1))
        logits = self.append(prompt[len(self.tokens) :], n_logits=1)
        return None if logits is None else logits[-1]
