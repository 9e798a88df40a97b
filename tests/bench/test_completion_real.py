"""The real-code completion benchmark: its metrics by hand, its sampling, and a smoke run on a local folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyserver.bench.completion_real import edit_similarity, is_right, run_real_completion_bench
from pyserver.bench.real_corpus import BENCH_PACKAGES, CALIBRATION_PACKAGES, CodeFile, sample_positions

HELD_OUT = {
    "click",
    "jinja2",
    "markupsafe",
    "werkzeug",
    "flask",
    "itsdangerous",
    "attrs",
    "sqlite-utils",
    "requests",
    "urllib3",
    "idna",
    "certifi",
    "charset-normalizer",
    "packaging",
    "pyparsing",
    "six",
    "python-dateutil",
    "pytz",
    "tomli",
    "rich",
    "pygments",
    "tqdm",
    "more-itertools",
}


def test_edit_similarity_by_hand() -> None:
    assert edit_similarity("abc", "abc") == 1.0
    assert edit_similarity("", "abc") == 0.0
    assert edit_similarity("abcd", "abxd") == pytest.approx(2 * 3 / 8)  # LCS "abd"
    assert edit_similarity("self.x", "self.y = 1") == pytest.approx(2 * 5 / 16)


def test_right_means_exact_or_the_first_ten_characters() -> None:
    assert is_right("return x  \nmore", "return x")
    assert is_right("self.assertEqual(a, c)", "self.assertEqual(a, b)")
    assert not is_right("self.asse", "self.assertEqual(a, b)")  # nine characters: too little to count
    assert not is_right("", "")


def test_packages_are_held_out_from_training_and_disjoint() -> None:
    assert set(BENCH_PACKAGES) <= HELD_OUT and set(CALIBRATION_PACKAGES) <= HELD_OUT
    assert not set(BENCH_PACKAGES) & set(CALIBRATION_PACKAGES)


def test_positions_are_line_starts_and_after_punctuation() -> None:
    text = "def f(a, b):\n    return a.b(c)\n" * 20
    samples = sample_positions([CodeFile("m/f.py", text)], 40, seed=3)
    assert len(samples) == 40
    for s in samples:
        line_start = text.rfind("\n", 0, s.cursor) + 1
        before = text[line_start : s.cursor]
        if s.kind == "line_start":
            assert before.strip() == ""
        else:
            assert before[-1] in ".(,=[:"
        assert s.target == text[s.cursor : text.find("\n", s.cursor)]
        assert s.document == text[: s.cursor] + text[s.cursor + len(s.target) :]


def test_smoke_on_a_local_folder(tmp_path: Path) -> None:
    src = Path(__file__).resolve().parents[2] / "pyserver" / "completion"
    report = run_real_completion_bench([None], samples=16, do_calibrate=False, local=src)
    m = report["models"][0]
    assert m["samples"] == 16
    assert 0.0 <= m["exact_match"] <= 1.0 and 0.0 <= m["edit_similarity"] <= 1.0
    assert m["ungated"]["shown_rate"] == pytest.approx(1 - m["empty_rate"])
    assert m["gated"]["calibrated"]  # the shipped model's own calibration
    assert m["gated"]["shown_rate"] <= m["ungated"]["shown_rate"]
    # the reasons the editor logs, counted over the same answers: every sample has one, and those shown by the
    # gate are the "shown" ones
    assert sum(m["reasons"].values()) == m["samples"]
    assert m["reasons"].get("shown", 0) == pytest.approx(m["gated"]["shown_rate"] * m["samples"])
