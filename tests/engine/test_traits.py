"""A model's languages and fill-in-the-middle orders, from its GGUF metadata."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pyserver.engine import Model
from pyserver.engine.traits import ModelTraits
from pyserver.models import default_model_path
from tests.support.builders import random_model, write_gguf


def test_traits_from_metadata(tmp_path: Path) -> None:
    m = random_model(np.random.default_rng(0), "bitnet", "TQ2_0", n_layer=1)
    plain = Model.load(write_gguf(m, tmp_path / "a.gguf"))
    assert plain.traits == ModelTraits() and plain.traits.knows("cobol") and plain.traits.fim_order == "psm"
    tagged = Model.load(
        write_gguf(
            m,
            tmp_path / "b.gguf",
            strings={"ryzanstein.languages": ["Python"], "ryzanstein.fim.orders": ["psm", "spm", "xyz"]},
        )
    )
    assert tagged.traits == ModelTraits(languages=("python",), fim_orders=("psm", "spm"))
    assert tagged.traits.knows("python") and not tagged.traits.knows("javascript")
    assert tagged.traits.fim_order == "spm"


def test_shipped_model_knows_python_only() -> None:
    path = default_model_path()
    assert path is not None
    assert Model.load(path).traits.languages == ("python",)
