"""Small random models written as real files (GGUF through the `gguf` package's writer, safetensors directories),
together with the dense weights the numpy reference runs on."""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path

import gguf
import numpy as np
from gguf.constants import GGMLQuantizationType
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from pyserver.engine.config import LINEAR_NAMES, ModelConfig
from pyserver.engine.gguf_writing import SPECIALS, add_bpe_tokenizer, add_hparams, bpe_vocabulary
from pyserver.engine.safetensors_loader import HF_LINEARS, HF_NORMS
from tests.support.reference_kernels import pack
from tests.support.reference_model import RefWeights

CORPUS = [
    "def add(a, b):\n    return a + b\n",
    "class Point:\n    def __init__(self, x, y):\n        self.x = x\n        self.y = y\n",
    "import os\nfor name in os.listdir('.'):\n    print(name)\n",
    "if __name__ == '__main__':\n    main()\n",
]


def train_bpe(vocab_size: int) -> Tokenizer:
    """A byte-level BPE with the FIM specials at the end of its vocabulary."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(SPECIALS), show_progress=False, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(CORPUS * 20, trainer)
    tok.add_special_tokens(list(SPECIALS))
    return tok


@dataclass
class RandomModel:
    cfg: ModelConfig
    codes: list[dict[str, np.ndarray]]  # per layer: int8 [rows, cols]
    scales: list[dict[str, np.ndarray]]  # per layer: TQ [rows, cols/256] block scales, I2_S [1]
    extra: list[dict[str, float]]  # per layer: the GGUF `<proj>.scale` values (1.0 = no tensor)
    norms: list[dict[str, np.ndarray]]
    token_embd: np.ndarray
    output_norm: np.ndarray
    output: np.ndarray | None = None
    tokenizer: Tokenizer | None = None
    fmt: str = "TQ2_0"
    meta: dict[str, object] = field(default_factory=dict)

    def reference(self) -> RefWeights:
        """Dense weights as the file stores them (f16-rounded block scales, extra scales folded in)."""
        w = RefWeights(
            token_embd=self.token_embd.astype(np.float64),
            output_norm=self.output_norm.astype(np.float64),
            output=None if self.output is None else self.output.astype(np.float64),
        )
        for i in range(self.cfg.n_layer):
            layer: dict[str, np.ndarray] = {k: v.astype(np.float64) for k, v in self.norms[i].items()}
            for name in LINEAR_NAMES:
                c, s = self.codes[i][name], self.scales[i][name]
                if self.fmt == "I2_S":
                    dense = c.astype(np.float64) * float(s.reshape(-1)[0])
                else:
                    d = s.astype(np.float16).astype(np.float64)
                    dense = (c.reshape(c.shape[0], -1, 256) * d[:, :, None]).reshape(c.shape)
                layer[name] = dense * self.extra[i][name]
            w.layers.append(layer)
        return w


def random_model(
    rng: np.random.Generator,
    arch: str = "bitnet",
    fmt: str = "TQ2_0",
    n_embd: int = 256,
    n_ff: int = 512,
    n_layer: int = 2,
    n_head: int = 4,
    n_head_kv: int = 2,
    vocab: int = 320,
    block_scales: bool = False,
    extra_scales: bool = False,
    separate_output: bool = False,
) -> RandomModel:
    cfg = ModelConfig.for_arch(
        arch,
        n_embd=n_embd,
        n_ff=n_ff,
        n_head=n_head,
        n_head_kv=n_head_kv,
        n_layer=n_layer,
        vocab=vocab,
        context_length=256,
        tied_embeddings=not separate_output,
    )
    codes, scales, extra, norms = [], [], [], []
    for _ in range(n_layer):
        c, s, e = {}, {}, {}
        for name, (r, k) in cfg.linear_shapes().items():
            c[name] = rng.integers(-1, 2, size=(r, k)).astype(np.int8)
            base = float(rng.uniform(0.5, 2.0))
            if fmt == "I2_S":
                s[name] = np.array([base], np.float32)
            elif block_scales:
                s[name] = rng.uniform(0.5, 2.0, size=(r, k // 256)).astype(np.float32)
            else:
                s[name] = np.full((r, k // 256), base, np.float32)
            e[name] = float(rng.uniform(0.5, 1.5)) if extra_scales else 1.0
        codes.append(c)
        scales.append(s)
        extra.append(e)
        norms.append({k: rng.uniform(0.5, 1.5, size).astype(np.float32) for k, size in cfg.norm_sizes().items()})
    table = lambda: rng.normal(0, 1, size=(vocab, n_embd)).astype(np.float16).astype(np.float32)  # noqa: E731
    return RandomModel(
        cfg,
        codes,
        scales,
        extra,
        norms,
        table(),
        rng.uniform(0.5, 1.5, n_embd).astype(np.float32),
        output=table() if separate_output else None,
        tokenizer=train_bpe(vocab),
        fmt=fmt,
    )


def _table_tensor(values: np.ndarray, kind: str) -> tuple[np.ndarray, GGMLQuantizationType | None]:
    if kind == "F32":
        return values.astype(np.float32), None
    if kind == "F16":
        return values.astype(np.float16), None
    if kind == "BF16":
        return (values.astype(np.float32).view(np.uint32) >> 16).astype(np.uint16).view(np.uint8).reshape(
            values.shape[0], -1
        ), GGMLQuantizationType.BF16
    return gguf.quants.quantize(values.astype(np.float32), GGMLQuantizationType[kind]), GGMLQuantizationType[kind]


def _stored_values(values: np.ndarray, kind: str) -> np.ndarray:
    if kind == "BF16":
        return ((values.astype(np.float32).view(np.uint32) >> 16) << 16).view(np.float32)
    if kind in ("F16", "F32"):
        return values.astype(np.float16 if kind == "F16" else np.float32).astype(np.float32)
    return gguf.quants.dequantize(_table_tensor(values, kind)[0], GGMLQuantizationType[kind]).astype(np.float32)


def write_gguf(
    m: RandomModel,
    path: Path,
    arch: str | None = None,
    table_type: str = "F16",
    linear_type: str | None = None,
    skip: tuple[str, ...] = (),
    bad_shape: str | None = None,
    context_length: int = 256,
    strings: dict[str, list[str]] | None = None,
) -> Path:
    """Writes the model as llama.cpp would, plus `strings` (string-array metadata, e.g. the model's traits).
    linear_type: "F16"/"F32" stores projections as floats holding
    {-s, 0, +s} (what convert_hf_to_gguf writes for --outtype f16). I2_S models go through write_gguf_i2s."""
    assert m.fmt != "I2_S", "use write_gguf_i2s"
    w = gguf.GGUFWriter(str(path), arch or m.cfg.arch)
    c = m.cfg
    add_hparams(w, c.with_(context_length=context_length))
    assert m.tokenizer is not None
    assert len(add_bpe_tokenizer(w, m.tokenizer)) == c.vocab
    for key, values in (strings or {}).items():
        w.add_array(key, values)
    tensors = _gguf_tensors(m, table_type, linear_type)
    # The reference must see the tables as stored (BF16 truncation, Q8_0 rounding).
    m.token_embd = _stored_values(m.token_embd, table_type)
    if m.output is not None:
        m.output = _stored_values(m.output, table_type)
    for name, (arr, raw) in tensors.items():
        if name in skip:
            continue
        if name == bad_shape:
            arr = arr[: arr.shape[0] // 2]
        w.add_tensor(name, arr, raw_dtype=raw)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    if linear_type is not None:  # float projections carry one scale per tensor, rounded to the stored type
        cast = np.float16 if linear_type == "F16" else np.float32
        for i in range(m.cfg.n_layer):
            for name in LINEAR_NAMES:
                m.scales[i][name] = np.array([cast(m.scales[i][name].reshape(-1)[0])], np.float32)
        m.fmt = "I2_S"
    return path


def _gguf_tensors(
    m: RandomModel, table_type: str, linear_type: str | None
) -> dict[str, tuple[np.ndarray, GGMLQuantizationType | None]]:
    out: dict[str, tuple[np.ndarray, GGMLQuantizationType | None]] = {}
    out["token_embd.weight"] = _table_tensor(m.token_embd, table_type)
    out["output_norm.weight"] = (m.output_norm, None)
    if m.output is not None:
        out["output.weight"] = _table_tensor(m.output, table_type)
    for i in range(m.cfg.n_layer):
        for k, v in m.norms[i].items():
            out[f"blk.{i}.{k}.weight"] = (v, None)
        for name in LINEAR_NAMES:
            c, s = m.codes[i][name], m.scales[i][name]
            if linear_type is not None:
                dense = c.astype(np.float32) * np.float32(s.reshape(-1)[0])
                out[f"blk.{i}.{name}.weight"] = (dense.astype(np.float16 if linear_type == "F16" else np.float32), None)
            else:
                qt = GGMLQuantizationType[m.fmt]
                out[f"blk.{i}.{name}.weight"] = (pack(m.fmt, c, s).reshape(c.shape[0], -1), qt)
            if m.extra[i][name] != 1.0:
                out[f"blk.{i}.{name}.scale"] = (np.array([m.extra[i][name]], np.float32), None)
    return out


# ---- I2_S: the gguf package has no type id 36, so these files are written by hand ------------------------


def _gguf_str(s: str) -> bytes:
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def write_gguf_i2s(m: RandomModel, path: Path) -> Path:
    """A bitnet.cpp-style file: architecture bitnet-b1.58, file type 40, I2_S (id 36) projections."""
    assert m.fmt == "I2_S"
    c, arch = m.cfg, "bitnet-b1.58"
    tokens, merges, types = bpe_vocabulary(m.tokenizer) if m.tokenizer else ([], [], [])
    kv: list[bytes] = []

    def add(key: str, vtype: int, payload: bytes) -> None:
        kv.append(_gguf_str(key) + struct.pack("<I", vtype) + payload)

    add("general.architecture", 8, _gguf_str(arch))
    add("general.file_type", 4, struct.pack("<I", 40))
    for key, val in [
        ("embedding_length", c.n_embd),
        ("block_count", c.n_layer),
        ("feed_forward_length", c.n_ff),
        ("attention.head_count", c.n_head),
        ("attention.head_count_kv", c.n_head_kv),
        ("context_length", 256),
        ("rope.dimension_count", c.n_embd // c.n_head),
    ]:
        add(f"{arch}.{key}", 4, struct.pack("<I", val))
    add(f"{arch}.rope.freq_base", 6, struct.pack("<f", c.rope_base))
    add(f"{arch}.attention.layer_norm_rms_epsilon", 6, struct.pack("<f", c.norm_eps))
    add("tokenizer.ggml.model", 8, _gguf_str("gpt2"))
    add("tokenizer.ggml.tokens", 9, struct.pack("<IQ", 8, len(tokens)) + b"".join(_gguf_str(t) for t in tokens))
    add("tokenizer.ggml.merges", 9, struct.pack("<IQ", 8, len(merges)) + b"".join(_gguf_str(t) for t in merges))
    add("tokenizer.ggml.token_type", 9, struct.pack("<IQ", 5, len(types)) + np.asarray(types, "<i4").tobytes())
    tensors: list[tuple[str, tuple[int, ...], int, bytes]] = [
        ("token_embd.weight", m.token_embd.shape, 1, m.token_embd.astype("<f2").tobytes()),
        ("output_norm.weight", m.output_norm.shape, 0, m.output_norm.astype("<f4").tobytes()),
    ]
    for i in range(c.n_layer):
        for k, v in m.norms[i].items():
            tensors.append((f"blk.{i}.{k}.weight", v.shape, 0, v.astype("<f4").tobytes()))
        for name in LINEAR_NAMES:
            cd, s = m.codes[i][name], m.scales[i][name]
            tensors.append((f"blk.{i}.{name}.weight", cd.shape, 36, pack("I2_S", cd, s).tobytes()))
    infos, blobs, offset = [], [], 0
    for name, shape, tid, blob in tensors:
        infos.append(
            _gguf_str(name)
            + struct.pack("<I", len(shape))
            + b"".join(struct.pack("<Q", d) for d in reversed(shape))
            + struct.pack("<IQ", tid, offset)
        )
        pad = (-len(blob)) % 32
        blobs.append(blob + b"\0" * pad)
        offset += len(blob) + pad
    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kv)) + b"".join(kv) + b"".join(infos)
    head += b"\0" * ((-len(head)) % 32)
    path.write_bytes(head + b"".join(blobs))
    return path


# ---- safetensors directories ----------------------------------------------------------------------------

# Hugging Face tensor names: the loader's (the writer must produce what real checkpoints have; the norms take each
# name's first spelling).
HF_NAMES = HF_LINEARS
HF_NORM_NAMES = {ours: names[0] for ours, names in HF_NORMS.items()}


def hf_pack(codes: np.ndarray) -> np.ndarray:
    """transformers' BitNet packing: row i * (rows/4) + p goes to byte row p, bits 2i."""
    rows = codes.shape[0]
    per = (rows + 3) // 4
    u = (codes.astype(np.int16) + 1).astype(np.uint8)
    out = np.zeros((per, codes.shape[1]), np.uint8)
    for i in range(4):
        part = u[i * per : (i + 1) * per]
        out[: part.shape[0]] |= part << (2 * i)
    return out


def write_safetensors_dir(
    m: RandomModel, directory: Path, packed: bool, dtype: str = "F16", rng: np.random.Generator | None = None
) -> Path:
    """packed: uint8 codes + weight_scale = 1/scale (quant_method bitnet), as transformers stores them. Else latent
    Gaussian floats; the model's codes and scales are then replaced by BitNet's absmean rule applied here in numpy
    (the reference the loader's own ternarization is checked against). Needs a model made with fmt="I2_S"."""
    assert m.fmt == "I2_S"
    rng = rng or np.random.default_rng(0)
    from safetensors.numpy import save_file

    directory.mkdir(parents=True, exist_ok=True)
    c = m.cfg
    tensors: dict[str, np.ndarray] = {}
    cast = (lambda a: a.astype(np.float16)) if dtype == "F16" else (lambda a: a.astype(np.float32))  # noqa: E731
    tensors["model.embed_tokens.weight"] = cast(m.token_embd)
    tensors["model.norm.weight"] = m.output_norm.astype(np.float32)
    for i in range(c.n_layer):
        p = f"model.layers.{i}."
        for k, v in m.norms[i].items():
            tensors[p + HF_NORM_NAMES[k] + ".weight"] = v.astype(np.float32)
        for name in LINEAR_NAMES:
            cd = m.codes[i][name]
            s = float(m.scales[i][name].reshape(-1)[0])
            if packed:
                tensors[p + HF_NAMES[name] + ".weight"] = hf_pack(cd)
                tensors[p + HF_NAMES[name] + ".weight_scale"] = np.array([1.0 / s], np.float32)
            else:
                latent = cast(rng.normal(0.0, s, size=cd.shape))
                w32 = latent.astype(np.float32)
                mean = np.float32(np.abs(w32).mean())
                m.codes[i][name] = np.clip(np.round(w32 / mean), -1, 1).astype(np.int8)
                m.scales[i][name] = np.array([mean], np.float32)
                tensors[p + HF_NAMES[name] + ".weight"] = latent
    save_file(tensors, str(directory / "model.safetensors"))
    config = {
        "architectures": ["BitNetForCausalLM" if c.sub_norms else "LlamaForCausalLM"],
        "hidden_size": c.n_embd,
        "intermediate_size": c.n_ff,
        "num_hidden_layers": c.n_layer,
        "num_attention_heads": c.n_head,
        "num_key_value_heads": c.n_head_kv,
        "rms_norm_eps": c.norm_eps,
        "rope_theta": c.rope_base,
        "max_position_embeddings": 256,
        "vocab_size": c.vocab,
        "hidden_act": "relu2" if c.act == "relu2" else "silu",
        "tie_word_embeddings": True,
        "bos_token_id": 0,
        "eos_token_id": 0,
    }
    if packed:
        config["quantization_config"] = {
            "quant_method": "bitnet",
            "linear_class": "autobitlinear",
            "quantization_mode": "offline",
        }
    (directory / "config.json").write_text(json.dumps(config))
    assert m.tokenizer is not None
    m.tokenizer.save(str(directory / "tokenizer.json"))
    return directory


# ---- Qwen3 files in layouts the gguf package cannot write ------------------------------------------------------


def write_gguf_retyped(src: Path, dst: Path, convert: dict[str, tuple[int, bytes]]) -> Path:
    """dst = the GGUF src (any file the gguf package reads) with the named tensors replaced by raw (type id, bytes):
    how a test writes PrismML's Q2_0 g128 blocks (type 42), which no writer here knows. Metadata is copied byte for
    byte; tensors are laid out again, 32-byte aligned."""
    r = gguf.GGUFReader(src)
    kv = [b"".join(p.tobytes() for p in f.parts) for name, f in r.fields.items() if not name.startswith("GGUF.")]
    infos, blobs, offset = [], [], 0
    for t in r.tensors:
        tid, blob = convert.get(t.name, (int(t.tensor_type), t.data.tobytes()))
        dims = [int(d) for d in t.shape]  # GGUF order, innermost first
        infos.append(_gguf_str(t.name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims))
        infos[-1] += struct.pack("<IQ", tid, offset)
        pad = (-len(blob)) % 32
        blobs.append(blob + b"\0" * pad)
        offset += len(blob) + pad
    head = b"GGUF" + struct.pack("<IQQ", 3, len(r.tensors), len(kv)) + b"".join(kv) + b"".join(infos)
    head += b"\0" * ((-len(head)) % 32)
    dst.write_bytes(head + b"".join(blobs))
    return dst
