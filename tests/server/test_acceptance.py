"""Acceptance statistics: counted per model and language, kept across restarts, damaged files start afresh."""

from __future__ import annotations

import json
from pathlib import Path

from pyserver.server.acceptance import AcceptanceStats


def test_counts_rates_and_persistence(tmp_path: Path) -> None:
    s = AcceptanceStats(tmp_path)
    for i in range(4):
        s.shown(f"file:///{i}.py", "m.gguf", "python")
    s.shown("file:///x.go", "m.gguf", "go")
    assert s.accepted("file:///1.py", "accepted") and s.accepted("file:///2.py", "accepted_line")
    assert not s.accepted("file:///nowhere.py", "accepted") and not s.accepted("file:///1.py", "bogus")
    summary = s.summary()
    assert (summary["shown"], summary["accepted"], summary["accepted_line"]) == (5, 1, 1)
    assert summary["acceptance_rate"] == 0.2 and summary["partial_rate"] == 0.2
    py = next(r for r in summary["by_model_language"] if r["language"] == "python")  # type: ignore[union-attr]
    assert py["acceptance_rate"] == 0.25
    s.save()
    again = AcceptanceStats(tmp_path)
    assert again.summary()["shown"] == 5 and again.summary()["accepted"] == 1
    (tmp_path / "acceptance.json").write_text("{not json")
    assert AcceptanceStats(tmp_path).summary()["shown"] == 0
    (tmp_path / "acceptance.json").write_text(json.dumps({"counts": {"m": {"py": {"shown": -3, "accepted": "x"}}}}))
    assert AcceptanceStats(tmp_path).summary()["shown"] == 0  # nonsense counts are not trusted
