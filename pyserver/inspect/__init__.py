"""Introspection: what a ternary model's weights and the workspace index's signatures say, read without running
anything (`python -m pyserver inspect MODEL`, `python -m pyserver inspect-index PATH`, and the editor's "Inspect
Model" / "Inspect Index"), as JSON and as a self-contained HTML page with plain-SVG figures."""
