"""Test vectors made by the peers' own tools, kept in the repository (models/fixtures/, see its README)."""

from __future__ import annotations

from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[2] / "models" / "fixtures"
BITNET_CPP_GGUF = FIXTURES / "bitnet-b158-i2s-tiny.gguf"  # Microsoft's I2_S format, written by bitnet.cpp
