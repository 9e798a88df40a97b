"""Options of the engine tests: how long the header fuzz runs (test_header_fuzz.py)."""

from __future__ import annotations

import os

import pytest

# A few seconds in `make test`; longer on request: `RYZANSTEIN_FUZZ_EXAMPLES=5000 pytest tests/engine` or
# `pytest tests/engine --fuzz-examples 5000` (pytest reads this file's options only when the run starts in or below
# tests/engine; the environment variable works from anywhere).
DEFAULT_FUZZ_EXAMPLES = 150


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--fuzz-examples",
        type=int,
        default=None,
        help=f"examples per header fuzz test (default: $RYZANSTEIN_FUZZ_EXAMPLES or {DEFAULT_FUZZ_EXAMPLES})",
    )


@pytest.fixture(scope="session")
def fuzz_examples(request: pytest.FixtureRequest) -> int:
    option = request.config.getoption("--fuzz-examples", default=None)
    return int(option or os.environ.get("RYZANSTEIN_FUZZ_EXAMPLES") or DEFAULT_FUZZ_EXAMPLES)
