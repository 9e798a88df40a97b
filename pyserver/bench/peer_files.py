"""The GGUF files `bench peers` times both engines on: random ternary weights at a real checkpoint's shape, written
by the project's own GGUF writer in llama.cpp's `bitnet` architecture, with an F16 token embedding; the Q6_K
variants come from llama.cpp's own quantizer (`llama_model_quantize`, through llama-cpp-python), as a user's file
would. Speed does not depend on the weights' values, so random ones serve; files are cached, keyed by shape."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

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


# ---- Qwen3 (Ternary-Bonsai) files ------------------------------------------------------------------------------
# The Bonsai shapes (Qwen3-1.7B / 4B / 8B, as the brief and ../shared/notes/bonsai.md give them; a real file's own
# metadata is what the loader reads) and a few-MB one for tests. rope_base 1e6, RMS eps 1e-6 as Qwen3's config.json.
def _qwen3(n_embd: int, n_ff: int, n_layer: int, n_head: int, vocab: int, tied: bool, ctx: int) -> ModelConfig:
    return ModelConfig.for_arch(
        "qwen3",
        n_embd=n_embd,
        n_ff=n_ff,
        n_layer=n_layer,
        n_head=n_head,
        n_head_kv=8 if n_head >= 8 else n_head // 2,
        head_dim=128 if n_embd >= 1024 else 64,
        vocab=vocab,
        context_length=ctx,
        rope_base=1_000_000.0,
        norm_eps=1e-6,
        tied_embeddings=tied,
    )


QWEN3_SHAPES: dict[str, ModelConfig] = {
    "bonsai-1.7b": _qwen3(2048, 6144, 28, 16, 151936, True, 32768),
    "bonsai-4b": _qwen3(2560, 9728, 36, 32, 151936, True, 32768),
    "bonsai-8b": _qwen3(4096, 12288, 36, 32, 151936, False, 65536),
    # 2 layers, 4 q / 2 kv heads of 64; the vocabulary is the shipped model's 8,187 pieces + Qwen's 9 specials,
    # padded to 8,256 rows. F16 ~4.5 MB, Q2_0 ~1.2 MB.
    "qwen3-tiny": _qwen3(256, 512, 2, 4, 8256, True, 2048),
}
QWEN3_VARIANTS = ("f16", "q2_0", "tq2_0")
# Qwen2/3's added tokens this project uses, in the order of Qwen's vocabulary (ids 151643.. there).
QWEN3_SPECIALS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
)
# Qwen3's chat template, thinking off: the assistant turn opens with an empty think block, as Qwen3's own template
# writes it for enable_thinking=false.
QWEN3_CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n<think>\\n\\n</think>\\n\\n' }}{%- endif %}"
)
# Outlier channels (outliers=True): these hidden channels of every attn_norm / ffn_norm weight are 30-100x the
# others, so the inputs of q/k/v and gate/up carry a few huge channels, as Qwen's activations do. output_norm is
# left alone: 4 dominant channels there would make the logits (hence greedy top-1) a near-tie among rows.
OUTLIER_CHANNELS = (7, 100, 150, 211)
_VALUE_TILE = 1 << 22
GGML_TYPE_IDS = {
    "Q2_0": 42,
    "TQ2_0": int(GGMLQuantizationType.TQ2_0),
    "TQ1_0": int(GGMLQuantizationType.TQ1_0),
}  # weights per random block tiled over a matrix


def shipped_vocabulary() -> Path:
    return Path(__file__).resolve().parents[2] / "models" / "ryzanstein-code.gguf"


def _add_qwen2_vocabulary(w: gguf.GGUFWriter, vocab: int) -> None:
    """Qwen2-style byte-level BPE metadata: the shipped model's pieces and merges (its own specials dropped),
    Qwen's added tokens after them, then `[PAD{i}]` rows up to `vocab` (as llama.cpp's converter pads Qwen's
    151,936-row embedding)."""
    meta = GGUFFile(shipped_vocabulary()).metadata
    types = [int(t) for t in meta["tokenizer.ggml.token_type"]]
    normal = [str(t) for t, k in zip(meta["tokenizer.ggml.tokens"], types) if k == 1]
    tokens = normal + list(QWEN3_SPECIALS)
    if len(tokens) > vocab:
        raise ValueError(f"the vocabulary has {len(tokens)} tokens, more than the shape's {vocab}")
    ids = {s: len(normal) + i for i, s in enumerate(QWEN3_SPECIALS)}
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("qwen2")
    w.add_token_list(tokens + [f"[PAD{i}]" for i in range(len(tokens), vocab)])
    w.add_token_merges([str(m) for m in meta["tokenizer.ggml.merges"]])
    w.add_token_types([1] * len(normal) + [3] * len(QWEN3_SPECIALS) + [5] * (vocab - len(tokens)))
    w.add_bos_token_id(ids["<|endoftext|>"])
    w.add_eos_token_id(ids["<|im_end|>"])
    w.add_pad_token_id(ids["<|endoftext|>"])
    w.add_add_bos_token(False)
    for key, token in (
        ("fim_pre_token_id", "<|fim_prefix|>"),
        ("fim_suf_token_id", "<|fim_suffix|>"),
        ("fim_mid_token_id", "<|fim_middle|>"),
        ("fim_pad_token_id", "<|fim_pad|>"),
        ("fim_rep_token_id", "<|repo_name|>"),
        ("fim_sep_token_id", "<|file_sep|>"),
    ):
        w.add_uint32(f"tokenizer.ggml.{key}", ids[token])
    w.add_chat_template(QWEN3_CHAT_TEMPLATE)


def group_scaled_tile(rows: int, cols: int, group: int, rng: np.random.Generator, gain: float) -> np.ndarray:
    """A random block of ternary codes times one FP16 scale per `group` consecutive weights of a row, as F16:
    min(rows, ~4M / cols) rows. Scales are log-normal around gain / sqrt(cols * 2/3) (unit output variance for unit
    inputs, times gain), so they really differ between groups."""
    if cols % group:
        raise ValueError(f"{cols} columns are not whole groups of {group}")
    tile_rows = max(1, min(rows, _VALUE_TILE // cols))
    codes = rng.integers(-1, 2, size=(tile_rows, cols // group, group), dtype=np.int8)
    base = gain / np.sqrt(cols * 2 / 3)
    scales = (base * np.exp(rng.normal(0, 0.3, size=(tile_rows, cols // group, 1)))).astype(np.float16)
    return (codes * scales).astype(np.float16).reshape(tile_rows, cols)  # exact: a code times an f16 scale


def _tiled(tile: np.ndarray, rows: int, shift: int) -> np.ndarray:
    """rows rows of the tile repeated, its rows rotated by `shift` (so layers do not all hold the same matrix)."""
    t = np.roll(tile, shift % tile.shape[0], axis=0)
    return np.ascontiguousarray(np.tile(t, (-(-rows // t.shape[0]), 1))[:rows])


def qwen3_norms(cfg: ModelConfig, rng: np.random.Generator, outliers: bool) -> dict[str, np.ndarray]:
    """Every norm weight of a Qwen3 file (F32): 1 +- 0.2 at random (a swapped or skipped norm shows), and with
    outliers the OUTLIER_CHANNELS of attn_norm / ffn_norm 30-100x."""
    out: dict[str, np.ndarray] = {"output_norm.weight": rng.uniform(0.8, 1.2, cfg.n_embd).astype(np.float32)}
    for i in range(cfg.n_layer):
        for name, size in cfg.norm_sizes().items():
            v = rng.uniform(0.8, 1.2, size).astype(np.float32)
            if outliers and name in ("attn_norm", "ffn_norm"):
                ch = [c for c in OUTLIER_CHANNELS if c < size]
                v[ch] *= rng.uniform(30, 100, len(ch)).astype(np.float32)
            out[f"blk.{i}.{name}.weight"] = v
    return out


def write_qwen3_f16(cfg: ModelConfig, path: Path, *, outliers: bool = False, group: int = 64, seed: int = 0) -> Path:
    """A `qwen3` GGUF of cfg's shape with llama.cpp's tensor names, every matrix (projections, embedding, untied
    output) ternary codes times an FP16 scale per `group` weights of a row, stored as F16; norms F32. Tensors are
    written one at a time (the 4B file is ~8 GB), to a temporary name, then renamed."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    w = gguf.GGUFWriter(str(tmp), "qwen3")
    w.add_name(f"random qwen3 {cfg.n_embd}x{cfg.n_layer} g{group}{' outliers' if outliers else ''}")
    add_hparams(w, cfg)
    w.add_key_length(cfg.head_dim)  # Qwen3's head_dim is not n_embd / n_head at 1.7B; always written, as the converter
    w.add_value_length(cfg.head_dim)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    w.add_uint32("ryzanstein.ternary_group", group)
    _add_qwen2_vocabulary(w, cfg.vocab)
    # Gains: the embedding rows ~0.1 per weight (logits of std ~3 with a unit-RMS hidden state); projections ~1.
    tiles = {n: group_scaled_tile(r, c, group, rng, 1.0) for n, (r, c) in cfg.linear_shapes().items()}
    table_gain = 0.1 * np.sqrt(cfg.n_embd * 2 / 3)
    embd_tile = group_scaled_tile(cfg.vocab, cfg.n_embd, group, rng, table_gain)
    norms = qwen3_norms(cfg, rng, outliers)
    plan: list[tuple[str, tuple[int, ...], Any]] = [
        ("token_embd.weight", (cfg.vocab, cfg.n_embd), lambda: _tiled(embd_tile, cfg.vocab, 0))
    ]
    plan.append(("output_norm.weight", (cfg.n_embd,), lambda: norms["output_norm.weight"]))
    if not cfg.tied_embeddings:
        out_tile = group_scaled_tile(cfg.vocab, cfg.n_embd, group, rng, table_gain)
        plan.append(("output.weight", (cfg.vocab, cfg.n_embd), lambda: _tiled(out_tile, cfg.vocab, 0)))
    for i in range(cfg.n_layer):
        for name in cfg.norm_sizes():
            key = f"blk.{i}.{name}.weight"
            plan.append((key, norms[key].shape, lambda key=key: norms[key]))
        for name, (r, _) in cfg.linear_shapes().items():
            plan.append(
                (
                    f"blk.{i}.{name}.weight",
                    (r, tiles[name].shape[1]),
                    lambda n=name, r=r, i=i: _tiled(tiles[n], r, 7 * i),
                )
            )
    for name, shape, _ in plan:
        dtype = np.dtype(np.float32 if len(shape) == 1 else np.float16)
        w.add_tensor_info(name, shape, dtype, int(np.prod(shape)) * dtype.itemsize)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    for _, _, make in plan:
        w.write_tensor_data(make())
    w.close()
    os.replace(tmp, path)
    return path


def quantize_all(src: Path, dst: Path, packing: str, threads: int) -> Path:
    """dst = src quantized by llama.cpp's own quantizer to `packing` (Q2_0 or TQ2_0) everywhere, the token
    embedding and any output head included (a Bonsai file's are ternary too); norms stay F32."""
    import llama_cpp

    from pyserver.bench.peer_llama import quiet

    quiet(llama_cpp)
    params = llama_cpp.llama_model_quantize_default_params()
    params.nthread = threads
    params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{packing}")
    # ggml type ids (llama-cpp-python names only some: Q2_0 = 42, TQ2_0 = 35 in ggml.h)
    params.token_embedding_type = params.output_tensor_type = GGML_TYPE_IDS[packing]
    tmp = dst.with_name(dst.name + f".{os.getpid()}.tmp")
    if llama_cpp.llama_model_quantize(str(src).encode(), str(tmp).encode(), params) != 0:
        raise RuntimeError(f"llama.cpp could not quantize {src}")
    os.replace(tmp, dst)
    return dst


def qwen3_file(shape: str, variant: str, *, outliers: bool = False, group: int = 64, threads: int = 2) -> Path:
    """The cached random Qwen3 file of a shape (QWEN3_SHAPES) in a variant (QWEN3_VARIANTS): the F16 source written
    on first use, Q2_0 / TQ2_0 made from it by llama.cpp's quantizer. Sizes: bonsai-1.7b F16 3.4 GB (Q2_0 0.48 GB),
    bonsai-4b F16 8.0 GB (Q2_0 1.13 GB), bonsai-8b F16 16.4 GB. TQ2_0 (one scale per 256) is lossy where the group
    scales differ: a different model than the F16 file, compared only against llama.cpp on the same file."""
    if shape not in QWEN3_SHAPES:
        raise ValueError(f"unknown shape {shape!r} (known: {', '.join(QWEN3_SHAPES)})")
    if variant not in QWEN3_VARIANTS:
        raise ValueError(f"unknown variant {variant!r} (known: {', '.join(QWEN3_VARIANTS)})")
    if group not in (64, 128):
        raise ValueError(f"group must be 64 or 128, got {group}")
    stem = f"qwen3-{shape}-g{group}{'-outliers' if outliers else ''}"
    path = peer_dir() / f"{stem}-{variant}.gguf"
    if path.is_file():
        return path
    base = peer_dir() / f"{stem}-f16.gguf"
    if not base.is_file():
        write_qwen3_f16(QWEN3_SHAPES[shape], base, outliers=outliers, group=group)
    if variant != "f16":
        quantize_all(base, path, variant.upper(), threads)
    return path
