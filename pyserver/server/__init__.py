"""The LSP sidecar (`python -m pyserver serve`)."""
