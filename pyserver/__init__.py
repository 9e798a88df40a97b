"""Ryzanstein: a local, CPU-first code assistant (LSP sidecar and native ternary engine)."""

__version__ = "0.1.0"
