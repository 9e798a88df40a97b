"""Ryzanstein: a local, CPU-first code assistant (LSP sidecar and native ternary engine)."""

import os

# numpy's BLAS (the index's embedding model) gets one thread: the engine's own pool owns the cores, and OpenBLAS's
# threads, started at full priority and spinning after each call, would take them from a completion (a user's
# setting wins).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

__version__ = "0.1.0"
