"""secret_rules.py is detect-secrets 1.5.0's rules, copied (importing the package opens a socket): the same token
plugins with the same patterns and flags, the same keyword patterns for every file type, the same file types, and
heuristics that answer as the package's own do. The reference is the package itself (a dev dependency), imported
here, in the test process; the sidecar never imports it."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import subprocess
import sys
from typing import Any

import detect_secrets.plugins
import pytest
from detect_secrets.filters import heuristic
from detect_secrets.plugins import keyword
from detect_secrets.plugins.base import RegexBasedDetector
from detect_secrets.util import filetype
from hypothesis import given, settings
from hypothesis import strategies as st

from pyserver.index import secret_rules as ours

# What secrets.py leaves out, and why (see its docstring): they flag ordinary code.
LEFT_OUT = {"IPPublicDetector"}


def upstream_token_plugins() -> dict[str, Any]:
    """Every regex-based plugin class detect-secrets ships, by name."""
    found = {}
    for info in pkgutil.iter_modules(detect_secrets.plugins.__path__):
        module = importlib.import_module(f"detect_secrets.plugins.{info.name}")
        for name, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, RegexBasedDetector) and cls is not RegexBasedDetector and not inspect.isabstract(cls):
                found[name] = cls
    return found


def patterns(denylist: Any) -> list[tuple[str, int]]:
    return [(p.pattern, p.flags) for p in denylist]


def test_the_token_plugins_are_the_packages() -> None:
    upstream = upstream_token_plugins()
    assert {p.name for p in ours.PLUGINS} == set(upstream) - LEFT_OUT
    for plugin in ours.PLUGINS:
        cls = upstream[plugin.name]
        assert plugin.secret_type == cls.secret_type
        assert patterns(plugin.denylist) == patterns(cls.denylist), plugin.name


def test_the_keyword_patterns_are_the_packages_for_every_file_type() -> None:
    assert ours.KEYWORD_SECRET_TYPE == keyword.KeywordDetector.secret_type
    assert [t.name for t in ours.FileType] == [t.name for t in filetype.FileType]
    for kind in filetype.FileType:
        theirs = keyword.REGEX_BY_FILETYPE.get(kind, keyword.QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP)
        mine = ours.keyword_table(ours.FileType[kind.name])
        assert [(p.pattern, p.flags, g) for p, g in mine.items()] == [
            (p.pattern, p.flags, g) for p, g in theirs.items()
        ], kind


@pytest.mark.parametrize("suffix", [*ours.FILE_TYPES, "", ".PY", ".txt", ".env", ".yaml.bak", ".h"])
def test_file_types_are_the_packages(suffix: str) -> None:
    assert ours.file_type(suffix).name == filetype.determine_file_type(f"file{suffix}").name


secret_chars = st.sampled_from("abcXYZ019_-$.{}<>=:'\"()[] /+")
secrets = st.text(secret_chars, max_size=12) | st.text(max_size=12)
lines = st.builds(lambda a, s, b: a + s + b, st.text(secret_chars, max_size=20), secrets, st.text(max_size=10))


@settings(max_examples=400, deadline=None)
@given(secret=secrets, line=lines | st.text(max_size=40))
def test_the_heuristics_answer_as_the_packages(secret: str, line: str) -> None:
    assert ours.is_sequential_string(secret) == heuristic.is_sequential_string(secret)
    assert ours.is_potential_uuid(secret) == heuristic.is_potential_uuid(secret)
    assert ours.is_likely_id_string(secret, line) == heuristic.is_likely_id_string(secret, line)
    assert ours.is_templated_secret(secret) == heuristic.is_templated_secret(secret)
    assert ours.is_prefixed_with_dollar_sign(secret) == heuristic.is_prefixed_with_dollar_sign(secret)
    assert ours.is_indirect_reference(line) == heuristic.is_indirect_reference(line)
    assert ours.is_not_alphanumeric_string(secret) == heuristic.is_not_alphanumeric_string(secret)


@pytest.mark.parametrize(
    ("secret", "line"),
    [
        ("ABCDEF", "x = ABCDEF"),
        ("12345678", "pw = 12345678"),
        ("123e4567-e89b-12d3-a456-426614174000", "k = 123e4567-e89b-12d3-a456-426614174000"),
        ("hunter22", "user_id = hunter22"),
        ("{secret}", ""),
        ("${PASSWORD}", ""),
        ("$PASSWORD", ""),
        ("x", ""),
        ("", ""),
        ("*****", ""),
        ("v", "password = get_password()"),
        ("v", "secret = request.headers['apikey']"),
        ("v", "password = get(" + "x" * 1000 + ")"),
    ],
)
def test_the_heuristics_on_their_own_cases(secret: str, line: str) -> None:
    checks = ["is_sequential_string", "is_potential_uuid", "is_templated_secret", "is_prefixed_with_dollar_sign"]
    for name in [*checks, "is_not_alphanumeric_string"]:
        assert getattr(ours, name)(secret) == getattr(heuristic, name)(secret), name
    assert ours.is_likely_id_string(secret, line) == heuristic.is_likely_id_string(secret, line)
    assert ours.is_indirect_reference(line) == heuristic.is_indirect_reference(line)


def test_redacting_imports_no_network_library() -> None:
    """What the copy is for: finding secrets imports neither detect-secrets nor requests (nor urllib3, whose import
    binds an IPv6 socket)."""
    code = (
        "import sys; from pyserver.index.secrets import redact;"
        "redact('password = \"Corr3ct-Horse\"\\nAKIAIOSFODNN7EXAMPLE\\n', 'a.py');"
        "print(sorted(m for m in ('detect_secrets', 'requests', 'urllib3') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"
