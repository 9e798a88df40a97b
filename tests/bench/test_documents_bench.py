"""`python -m pyserver bench documents`, small: it types into a document in the real sidecar and in-process, and
reports per-keystroke costs (the figures themselves are the benchmark's, not asserted here)."""

from __future__ import annotations

from pyserver.bench.documents import document_text, run_documents_bench


def test_the_document_is_real_python_of_the_size_asked() -> None:
    text = document_text(0.5)
    assert len(text) == int(0.5 * 2**20) and "def " in text and text.count("\n") > 5000


def test_report_has_every_place_and_both_documents() -> None:
    report = run_documents_bench(mb=5, keystrokes=3)  # (over the completion size cap, as the 20 MB run)
    places = {"start", "middle", "end"}
    assert set(report["sidecar"]["keystroke_ms"]) == places
    assert set(report["edit_only_ms"]["line_table"]) == places == set(report["edit_only_ms"]["pygls_text_document"])
    assert all(v["p50"] > 0 for v in report["sidecar"]["keystroke_ms"].values())
    assert report["document"]["mb"] == 5.0 and list(report["targets"]) == ["sidecar_keystroke_p95_under_10_ms"]
