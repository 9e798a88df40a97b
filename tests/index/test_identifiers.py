"""Identifier splitting for the full-text index (hand-computed expectations)."""

from __future__ import annotations

from pyserver.index.identifiers import fts_query, identifier_terms, split_identifier


def test_split_identifier() -> None:
    assert split_identifier("parse_http_header") == ["parse", "http", "header"]
    assert split_identifier("parseHTTPHeader") == ["parse", "http", "header"]
    assert split_identifier("HTTPServer") == ["http", "server"]
    assert split_identifier("__init__") == ["init"]
    assert split_identifier("x") == []
    assert split_identifier("sha256sum") == ["sha", "256", "sum"]


def test_terms_keep_whole_names_and_drop_keywords() -> None:
    terms = identifier_terms("def readConfig(path): return load_json(path)")
    assert terms == ["readconfig", "read", "config", "path", "load_json", "load", "json", "path"]


def test_fts_query_quotes_and_dedupes() -> None:
    assert fts_query(["read", "config", "read", "or", 'x"y']) == '"read" OR "config" OR "or"'
    assert fts_query([]) == ""
