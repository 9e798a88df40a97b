"""Tokenizers built from GGUF metadata (byte-level BPE or SentencePiece) or from a `tokenizer.json`.

Control tokens (BOS, EOS, FIM markers) are kept out of the text-matching vocabulary on purpose: a source file that
contains the literal text `<|fim_prefix|>` must be encoded as text, never as the control token.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Regex, decoders, models, normalizers, pre_tokenizers
from tokenizers import Tokenizer as HFTokenizer

from pyserver.engine.errors import ModelLoadError, short_repr

# GGUF token types.
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6

# Pre-tokenizer regexes of the byte-level BPE families, keyed by `tokenizer.ggml.pre` (llama.cpp's names).
_GPT2_RE = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
_LLAMA3_RE = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
# Qwen2 / Qwen3 (llama.cpp's "qwen2"): llama3's, but digits one at a time.
_QWEN2_RE = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
PRE_TOKENIZER_REGEX = {
    "default": _GPT2_RE,
    "gpt2": _GPT2_RE,
    "gpt-2": _GPT2_RE,
    "llama-bpe": _LLAMA3_RE,
    "llama3": _LLAMA3_RE,
    "falcon3": _LLAMA3_RE,
    "smaug-bpe": _LLAMA3_RE,
    "qwen2": _QWEN2_RE,
}

FIM_NAMES = {
    "prefix": ("<|fim_prefix|>", "<fim_prefix>", "<PRE>", "<|fim_begin|>"),
    "suffix": ("<|fim_suffix|>", "<fim_suffix>", "<SUF>", "<|fim_hole|>"),
    "middle": ("<|fim_middle|>", "<fim_middle>", "<MID>", "<|fim_end|>"),
    "sep": ("<|file_sep|>", "<file_sep>", "<|fim_sep|>"),
}


@dataclass(frozen=True)
class SpecialTokens:
    bos: int | None = None
    eos: int | None = None
    eot: int | None = None
    fim_prefix: int | None = None
    fim_suffix: int | None = None
    fim_middle: int | None = None
    fim_sep: int | None = None
    add_bos: bool = False

    @property
    def has_fim(self) -> bool:
        return None not in (self.fim_prefix, self.fim_suffix, self.fim_middle)

    @property
    def stop_ids(self) -> frozenset[int]:
        return frozenset(t for t in (self.eos, self.eot, self.fim_sep) if t is not None)


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


class _GgufVocabulary:
    """The tokenizer keys of a GGUF file, each checked for its type and length before use (a ModelLoadError names
    the key): tokens and merges are arrays of strings, token types and scores numeric arrays as long as the
    vocabulary, special token ids integers inside it."""

    def __init__(self, meta: dict[str, Any], path: str | Path) -> None:
        self.meta, self.path = meta, path
        kind, tokens = meta.get("tokenizer.ggml.model"), meta.get("tokenizer.ggml.tokens")
        if kind is None or tokens is None:
            raise ModelLoadError(path, "the file has no tokenizer (tokenizer.ggml.model / tokens missing)")
        self.kind = self._string("model")
        if self.kind not in ("gpt2", "llama"):
            raise ModelLoadError(path, f"unsupported tokenizer model {short_repr(kind)} (supported: gpt2, llama)")
        self.tokens = self._strings("tokens")
        if not self.tokens:
            raise ModelLoadError(path, "'tokenizer.ggml.tokens' is empty")
        self.merges = self._strings("merges") if "tokenizer.ggml.merges" in meta else []
        self.pre = self._string("pre") if "tokenizer.ggml.pre" in meta else "default"
        types = self._numbers("token_type", integer=True)
        self.types = types.astype(np.int64) if types is not None else np.full(len(self.tokens), NORMAL)
        self._scores = self._numbers("scores", integer=False)  # checked even where unused (gpt2): a field is a field

    def fail(self, key: str, problem: str) -> ModelLoadError:
        return ModelLoadError(self.path, f"'tokenizer.ggml.{key}' {problem}")

    def _string(self, key: str) -> str:
        value = self.meta.get(f"tokenizer.ggml.{key}")
        if not isinstance(value, str):
            raise self.fail(key, f"must be a string, got {short_repr(value)}")
        return value

    def _strings(self, key: str) -> list[str]:
        value = self.meta.get(f"tokenizer.ggml.{key}")
        if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
            raise self.fail(key, f"must be an array of strings, got {short_repr(value)}")
        return value

    def _numbers(self, key: str, integer: bool) -> np.ndarray | None:
        """A numeric array with one entry per token, or None when absent."""
        value = self.meta.get(f"tokenizer.ggml.{key}")
        if value is None:
            return None
        kinds = "iu" if integer else "iuf"
        if not isinstance(value, np.ndarray) or value.dtype.kind not in kinds:
            raise self.fail(key, f"must be an array of {'integers' if integer else 'numbers'}, got {short_repr(value)}")
        if len(value) != len(self.tokens):
            raise self.fail(key, f"has {len(value)} entries, but there are {len(self.tokens)} tokens")
        return value

    def scores(self) -> np.ndarray:
        if self._scores is None:
            return -np.arange(len(self.tokens), dtype=np.float32)
        return self._scores.astype(np.float32)

    def token_id(self, key: str) -> int | None:
        value = self.meta.get(f"tokenizer.ggml.{key}")
        if value is None:
            return None
        if not _is_int(value):
            raise self.fail(key, f"must be an integer, got {short_repr(value)}")
        if not 0 <= int(value) < len(self.tokens):
            raise self.fail(key, f"is {int(value)}, outside the vocabulary of {len(self.tokens)} tokens")
        return int(value)

    def add_bos(self) -> bool:
        value = self.meta.get("tokenizer.ggml.add_bos_token", self.kind == "llama")
        if not isinstance(value, (bool, np.bool_)):
            raise self.fail("add_bos_token", f"must be a boolean, got {short_repr(value)}")
        return bool(value)


class Tokenizer:
    """Text <-> token ids for one model. `encode` never adds specials; the caller decides (BOS, FIM layout)."""

    def __init__(self, hf: HFTokenizer, special: SpecialTokens, vocab_size: int, control_ids: Sequence[int]) -> None:
        self.hf = hf
        self.special = special
        self.vocab_size = vocab_size
        self._control = frozenset(control_ids)

    @property
    def control_ids(self) -> frozenset[int]:
        return self._control

    def encode(self, text: str) -> list[int]:
        return list(self.hf.encode(text, add_special_tokens=False).ids)

    def decode(self, ids: Sequence[int]) -> str:
        return str(self.hf.decode([int(i) for i in ids if int(i) not in self._control], skip_special_tokens=False))

    def id_of(self, piece: str) -> int | None:
        tid = self.hf.token_to_id(piece)
        return None if tid is None else int(tid)

    # ---- construction ---------------------------------------------------------------

    @classmethod
    def from_gguf_metadata(cls, meta: dict[str, Any], path: str | Path = "<gguf>") -> Tokenizer:
        v = _GgufVocabulary(meta, path)
        try:
            if v.kind == "gpt2":
                hf = _byte_level_bpe(v.tokens, v.merges, v.pre)
            else:
                hf = _sentencepiece_bpe(v.tokens, v.scores(), v.types)
        except Exception as exc:  # tokenizers reports bad vocabularies with its own exception types
            raise ModelLoadError(path, f"invalid tokenizer data: {exc}") from exc
        by_name = {t: i for i, t in enumerate(v.tokens)}

        def fim(kind_: str, key: str) -> int | None:
            found = v.token_id(key)
            if found is None:
                found = next((by_name[n] for n in FIM_NAMES[kind_] if n in by_name), None)
            return found

        special = SpecialTokens(
            bos=v.token_id("bos_token_id"),
            eos=v.token_id("eos_token_id"),
            eot=v.token_id("eot_token_id"),
            fim_prefix=fim("prefix", "fim_pre_token_id"),
            fim_suffix=fim("suffix", "fim_suf_token_id"),
            fim_middle=fim("middle", "fim_mid_token_id"),
            fim_sep=fim("sep", "fim_sep_token_id"),
            add_bos=v.add_bos(),
        )
        control = [i for i, t in enumerate(v.types) if t in (CONTROL, UNKNOWN, UNUSED)]
        ids = {special.bos, special.eos, special.eot, special.fim_prefix, special.fim_suffix, special.fim_middle}
        ids.add(special.fim_sep)
        return cls(hf, special, len(v.tokens), sorted(set(control) | {i for i in ids if i is not None}))

    @classmethod
    def from_tokenizer_json(cls, path: str | Path, config: dict[str, Any] | None = None) -> Tokenizer:
        path = Path(path)
        try:
            hf = HFTokenizer.from_file(str(path))
        except Exception as exc:  # tokenizers raises its own Exception type
            raise ModelLoadError(path, f"cannot read tokenizer: {exc}") from exc
        hf.encode_special_tokens = True  # text that spells a special token is encoded as text
        config = config or {}
        added = {a.content: i for i, a in hf.get_added_tokens_decoder().items()}
        specials = {i for i, a in hf.get_added_tokens_decoder().items() if a.special}

        vocab_size = hf.get_vocab_size(with_added_tokens=True)

        def cfg_id(key: str) -> int | None:
            v = config.get(key)
            if isinstance(v, list):
                v = v[0] if v else None
            if v is None:
                return None
            if not _is_int(v):
                raise ModelLoadError(path.parent, f"'{key}' must be a token id, got {short_repr(v)}")
            if not 0 <= v < vocab_size:
                raise ModelLoadError(path.parent, f"'{key}' is {v}, outside the vocabulary of {vocab_size} tokens")
            return int(v)

        def by_names(names: Sequence[str]) -> int | None:
            return next((added.get(n, hf.token_to_id(n)) for n in names if hf.token_to_id(n) is not None), None)

        special = SpecialTokens(
            bos=cfg_id("bos_token_id"),
            eos=cfg_id("eos_token_id"),
            fim_prefix=by_names(FIM_NAMES["prefix"]),
            fim_suffix=by_names(FIM_NAMES["suffix"]),
            fim_middle=by_names(FIM_NAMES["middle"]),
            fim_sep=by_names(FIM_NAMES["sep"]),
            add_bos=_config_bool(config, "add_bos_token", path.parent),
        )
        return cls(hf, special, vocab_size, sorted(specials))


def _config_bool(config: dict[str, Any], key: str, where: Path) -> bool:
    v = config.get(key, False)
    if not isinstance(v, bool):
        raise ModelLoadError(where, f"'{key}' must be a boolean, got {short_repr(v)}")
    return v


def _byte_level_bpe(tokens: list[str], merges: list[str], pre: str) -> HFTokenizer:
    vocab = {t: i for i, t in enumerate(tokens)}
    pairs = []
    for m in merges:
        a, sep, b = m.partition(" ")
        if sep:
            pairs.append((a, b))
    hf = HFTokenizer(models.BPE(vocab=vocab, merges=pairs, fuse_unk=False, ignore_merges=False))
    regex = PRE_TOKENIZER_REGEX.get(pre, _GPT2_RE)
    hf.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(regex), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    hf.decoder = decoders.ByteLevel()
    return hf


def _sentencepiece_bpe(tokens: list[str], scores: np.ndarray, types: np.ndarray) -> HFTokenizer:
    """SentencePiece BPE as llama.cpp runs it: merge the adjacent pair whose merged piece scores highest; bytes
    missing from the vocabulary fall back to <0xNN> tokens."""
    vocab = {t: i for i, t in enumerate(tokens)}
    normal = [i for i, t in enumerate(types) if t in (NORMAL, USER_DEFINED)]
    merges: list[tuple[float, int, str, str]] = []
    for i in normal:
        piece = tokens[i]
        for cut in range(1, len(piece)):
            a, b = piece[:cut], piece[cut:]
            if (
                a in vocab
                and b in vocab
                and types[vocab[a]] in (NORMAL, USER_DEFINED)
                and types[vocab[b]] in (NORMAL, USER_DEFINED)
            ):
                merges.append((-float(scores[i]), i, a, b))
    merges.sort()
    unk = next((tokens[i] for i, t in enumerate(types) if t == UNKNOWN), None)
    hf = HFTokenizer(
        models.BPE(
            vocab=vocab, merges=[(a, b) for _, _, a, b in merges], unk_token=unk, byte_fallback=True, fuse_unk=True
        )
    )
    hf.normalizer = normalizers.Sequence([normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")])
    hf.decoder = decoders.Sequence(
        [
            decoders.ByteFallback(),
            decoders.Fuse(),
            decoders.Replace("\u2581", " "),
            decoders.Strip(" ", 1, 0),
        ]
    )
    return hf


def load_tokenizer_config(directory: Path) -> dict[str, Any]:
    """config.json merged with tokenizer_config.json / generation_config.json where present (ids only)."""
    merged: dict[str, Any] = {}
    for name in ("config.json", "generation_config.json", "tokenizer_config.json"):
        p = directory / name
        if p.is_file():
            try:
                data = json.loads(p.read_text(encoding="utf-8"))
            except (OSError, ValueError, RecursionError):
                continue
            if not isinstance(data, dict):
                continue
            for k in ("bos_token_id", "eos_token_id", "add_bos_token"):
                if k in data and data[k] is not None:
                    merged[k] = data[k]
    return merged
