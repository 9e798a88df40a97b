"""doctor says how each model is prompted: completions by fill-in-the-middle when the file declares the FIM tokens,
else by the prefix alone; refactors through a ChatML template (thinking off) or the code itself. Checked on the
committed tiny Qwen3 fixture (Ternary-Bonsai's architecture, tokens and template), a copy of its vocabulary without
FIM tokens, and the shipped model; the prompts themselves are checked to be what doctor says."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pyserver.completion.prompt import fim_prompt
from pyserver.engine.gguf_file import GGUFFile
from pyserver.engine.tokenizer import Tokenizer
from pyserver.engine.traits import ModelTraits
from pyserver.models import default_model_path
from pyserver.server.doctor import doctor, prompts

FIXTURE = Path(__file__).resolve().parents[2] / "models" / "fixtures" / "qwen3-tiny-outliers-q2_0.gguf"
FIM_KEYS = ("fim_pre_token_id", "fim_suf_token_id", "fim_mid_token_id", "fim_pad_token_id", "fim_rep_token_id")


@pytest.fixture(scope="module")
def meta() -> dict[str, Any]:
    return dict(GGUFFile(FIXTURE).metadata)


def without_fim(meta: dict[str, Any]) -> dict[str, Any]:
    """The fixture's metadata with no FIM token: keys dropped, the tokens' texts renamed."""
    fim = {"<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"}
    tokens = [f"[was{i}]" if t in fim else t for i, t in enumerate(meta["tokenizer.ggml.tokens"])]
    out = {k: v for k, v in meta.items() if k.removeprefix("tokenizer.ggml.") not in FIM_KEYS}
    return out | {
        "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.token_type": np.array(meta["tokenizer.ggml.token_type"]),
    }


def test_qwen3_with_fim_tokens(meta: dict[str, Any]) -> None:
    tok, traits = Tokenizer.from_gguf_metadata(meta, FIXTURE), ModelTraits.from_gguf_metadata(meta)
    said = prompts(tok, traits)
    assert said["completion_prompt"].startswith("fill-in-the-middle (PSM")
    assert said["refactor_prompt"] == "chat template (ChatML, thinking off)"
    sp = tok.special
    ids = fim_prompt(tok, "def f(x):\n    return ", "\n", 64, order=traits.fim_order)
    assert ids[0] == sp.fim_prefix and sp.fim_suffix in ids and sp.fim_middle in ids  # PSM, as said


def test_qwen3_without_fim_tokens_is_prefix_only(meta: dict[str, Any]) -> None:
    plain = without_fim(meta)
    tok, traits = Tokenizer.from_gguf_metadata(plain), ModelTraits.from_gguf_metadata(plain)
    assert not tok.special.has_fim
    said = prompts(tok, traits)
    assert said["completion_prompt"].startswith("prefix only")
    assert said["refactor_prompt"] == "chat template (ChatML, thinking off)"
    prefix = "def f(x):\n    return "
    assert fim_prompt(tok, prefix, "\n", 64) == tok.encode(prefix)  # the prefix alone, as said


def test_doctor_reports_the_model_and_the_setups_tiers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    shipped = default_model_path()
    assert shipped is not None
    cfg = tmp_path / "config" / "ryzanstein" / "config.json"
    cfg.parent.mkdir(parents=True)
    decision = {"tier": "3B", "model": "ternary-bonsai-1.7b", "use_now": "ternary-bonsai-1.7b", "reasons": []}
    decision |= {"completion_model": "ternary-bonsai-1.7b", "refactor_model": "ryzanstein-code"}
    paths = {"ternary-bonsai-1.7b": str(FIXTURE), "ryzanstein-code": str(shipped)}
    cfg.write_text(json.dumps({"decision": decision, "model_paths": paths}))
    report = doctor(model=str(FIXTURE), storage=str(tmp_path / "storage"))
    assert report["model"]["arch"] == "qwen3" and report["model"]["fim"] is True
    assert report["model"]["completion_prompt"].startswith("fill-in-the-middle (PSM")
    assert report["model"]["refactor_prompt"] == "chat template (ChatML, thinking off)"
    serving = report["setup"]["serving"]
    assert serving["completions"]["model"] == "ternary-bonsai-1.7b" and serving["completions"]["arch"] == "qwen3"
    assert serving["completions"]["completion_prompt"].startswith("fill-in-the-middle (PSM")
    # The shipped model: SPM (its metadata names both orders), no chat template.
    assert serving["refactors"]["completion_prompt"].startswith("fill-in-the-middle (SPM")
    assert serving["refactors"]["refactor_prompt"] == "the code itself, fill-in-the-middle"
