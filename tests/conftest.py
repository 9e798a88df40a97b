from __future__ import annotations

import os

import numpy as np
import pytest

# Models load in the decode layout wherever a tensor allows, not by the autotuner's timing (which depends on the
# machine's mood): results stay the same from run to run. tests/engine/test_autotune.py covers "auto".
os.environ.setdefault("RYZANSTEIN_LAYOUT", "decode")


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261122)
