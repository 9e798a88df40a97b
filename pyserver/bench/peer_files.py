"""The GGUF files `bench peers` times both engines on: random ternary weights at a real checkpoint's shape, written
by the project's own GGUF writer in llama.cpp's `bitnet` architecture, with an F16 token embedding; the Q6_K
variants come from llama.cpp's own quantizer (`llama_model_quantize`, through llama-cpp-python), as a user's file
would. Speed does not depend on the weights' values, so random ones serve; files are cached, keyed by shape."""

from __future__ import annotations

import os
from pathlib import Path

import gguf
import numpy as np
from gguf.constants import GGMLQuantizationType

from pyserver.engine.config import ModelConfig
from pyserver.engine.gguf_file import GGUFFile
from pyserver.engine.gguf_writing import add_hparams
from pyserver.engine.random_model import random_packed
from pyserver.paths import cache_dir

# name -> (projection packing, token embedding type)
VARIANTS: dict[str, tuple[str, str]] = {
    "tq2_0-f16": ("TQ2_0", "F16"),
    "tq2_0-q6_k": ("TQ2_0", "Q6_K"),
    "tq1_0-f16": ("TQ1_0", "F16"),
    "tq1_0-q6_k": ("TQ1_0", "Q6_K"),
}


def peer_dir() -> Path:
    return cache_dir() / "bench-peers"


def _add_vocabulary(w: gguf.GGUFWriter, vocab: int) -> None:
    """A SentencePiece-style vocabulary of placeholder pieces: both engines need one to load a file, and the
    benchmark feeds token ids, never text."""
    tokens = ["<unk>", "<s>", "</s>"] + [f"\u2581t{i}" for i in range(3, vocab)]
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores([0.0] * vocab)
    w.add_token_types([2, 3, 3] + [1] * (vocab - 3))
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)


def _add_real_vocabulary(w: gguf.GGUFWriter, vocab: int, source: Path) -> None:
    """The vocabulary of a real model (`source`, a byte-level BPE GGUF: the shipped model's), padded with unused
    tokens to `vocab`: text then tokenizes to as many tokens as a real code model's tokenizer gives, which is what
    a latency measurement needs (speed does not depend on which tokens)."""
    meta = GGUFFile(source).metadata
    tokens = [str(t) for t in meta["tokenizer.ggml.tokens"]]
    types = [int(t) for t in meta["tokenizer.ggml.token_type"]]
    if len(tokens) > vocab:
        raise ValueError(f"{source} has {len(tokens)} tokens, more than the shape's {vocab}")
    w.add_tokenizer_model(str(meta["tokenizer.ggml.model"]))
    w.add_tokenizer_pre(str(meta.get("tokenizer.ggml.pre", "default")))
    w.add_token_list(tokens + [f"<|unused_{i}|>" for i in range(len(tokens), vocab)])
    w.add_token_merges([str(m) for m in meta["tokenizer.ggml.merges"]])
    w.add_token_types(types + [5] * (vocab - len(tokens)))  # 5: unused
    for key in (
        "bos_token_id",
        "eos_token_id",
        "fim_pre_token_id",
        "fim_suf_token_id",
        "fim_mid_token_id",
        "fim_sep_token_id",
    ):
        if f"tokenizer.ggml.{key}" in meta:
            w.add_uint32(f"tokenizer.ggml.{key}", int(meta[f"tokenizer.ggml.{key}"]))
    w.add_add_bos_token(False)
    for key in ("ryzanstein.fim.orders", "ryzanstein.languages"):
        if key in meta:
            w.add_array(key, [str(v) for v in meta[key]])


def write_random_gguf(
    cfg: ModelConfig, packing: str, path: Path, seed: int = 0, vocabulary_of: Path | None = None
) -> Path:
    """A `bitnet` GGUF of cfg's shape: random ternary projections in `packing` (TQ1_0 or TQ2_0), random F16
    token embedding (tied output), unit norms, and placeholder tokens (or `vocabulary_of` a real model's). Written
    to a temporary name, then renamed."""
    rng = np.random.default_rng(seed)
    qtype = GGMLQuantizationType[packing]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    w = gguf.GGUFWriter(str(tmp), "bitnet")
    add_hparams(w, cfg.with_(tied_embeddings=True))
    w.add_file_type(gguf.LlamaFileType.MOSTLY_TQ1_0 if packing == "TQ1_0" else gguf.LlamaFileType.MOSTLY_TQ2_0)
    if vocabulary_of is not None:
        _add_real_vocabulary(w, cfg.vocab, vocabulary_of)
    else:
        _add_vocabulary(w, cfg.vocab)
    tile = rng.normal(0, 0.02, size=(min(cfg.vocab, 4096), cfg.n_embd)).astype(np.float16)
    w.add_tensor("token_embd.weight", np.tile(tile, (-(-cfg.vocab // tile.shape[0]), 1))[: cfg.vocab])
    w.add_tensor("output_norm.weight", np.ones(cfg.n_embd, np.float32))
    packed = {name: random_packed(packing, r, c, rng).reshape(r, -1) for name, (r, c) in cfg.linear_shapes().items()}
    for i in range(cfg.n_layer):
        for name, size in cfg.norm_sizes().items():
            w.add_tensor(f"blk.{i}.{name}.weight", np.ones(size, np.float32))
        for name, data in packed.items():
            w.add_tensor(f"blk.{i}.{name}.weight", data, raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    os.replace(tmp, path)
    return path


def quantize_embedding(src: Path, dst: Path, packing: str, embedding: str, threads: int) -> Path:
    """dst = src with its token embedding converted by llama.cpp's quantizer (projections keep their packing)."""
    import llama_cpp

    from pyserver.bench.peer_llama import quiet

    quiet(llama_cpp)
    params = llama_cpp.llama_model_quantize_default_params()
    params.nthread = threads
    params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{packing}")
    params.token_embedding_type = getattr(llama_cpp, f"GGML_TYPE_{embedding}")
    params.allow_requantize = True
    tmp = dst.with_name(dst.name + f".{os.getpid()}.tmp")
    if llama_cpp.llama_model_quantize(str(src).encode(), str(tmp).encode(), params) != 0:
        raise RuntimeError(f"llama.cpp could not quantize {src}")
    os.replace(tmp, dst)
    return dst


def tensor_types(path: Path) -> dict[str, list[str]]:
    """Which storage type each kind of tensor has in the file (checks what the quantizer wrote)."""
    kinds: dict[str, set[str]] = {}
    for name, info in GGUFFile(path).tensors.items():
        kind = name.split(".", 2)[-1] if name.startswith("blk.") else name
        kinds.setdefault(kind, set()).add(info.type_name)
    return {k: sorted(v) for k, v in sorted(kinds.items())}


def latency_proxy_file(shape_name: str, cfg: ModelConfig, vocabulary_of: Path) -> Path:
    """A tier's cost with a code model's tokenizer: random TQ2_0 weights at `cfg`'s shape, the vocabulary of the
    shipped model (cached)."""
    path = peer_dir() / f"{shape_name}-tq2_0-f16-codevocab.gguf"
    if not path.is_file():
        write_random_gguf(
            cfg.with_(context_length=max(cfg.context_length, 2048)), "TQ2_0", path, vocabulary_of=vocabulary_of
        )
    return path


def peer_file(shape_name: str, cfg: ModelConfig, variant: str, threads: int = 2) -> Path:
    """The cached file for a variant, written (and quantized) on first use."""
    packing, embedding = VARIANTS[variant]
    path = peer_dir() / f"{shape_name}-{variant}.gguf"
    if path.is_file():
        return path
    base = peer_dir() / f"{shape_name}-{packing.lower()}-f16.gguf"
    if not base.is_file():
        write_random_gguf(cfg, packing, base)
    if embedding != "F16":
        quantize_embedding(base, path, packing, embedding, threads)
    return path
