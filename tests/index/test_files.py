"""Which files the index reads: .gitignore at every level, include/exclude globs, secrets, binaries, size cap."""

from __future__ import annotations

from pathlib import Path

from pyserver.index.files import FileRules, looks_binary


def tree(root: Path, files: dict[str, bytes | str]) -> None:
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data if isinstance(data, bytes) else data.encode())


def test_walk_applies_every_rule(tmp_path: Path) -> None:
    tree(
        tmp_path,
        {
            "app/main.py": "print(1)\n",
            "app/util.ts": "export const x = 1\n",
            "app/generated/out.py": "x = 1\n",  # ignored by app/.gitignore
            "app/.gitignore": "generated/\n*.log\n!keep.log\n",
            "app/debug.log": "log\n",  # not a code extension anyway
            ".gitignore": "/build_out/\nsecret_dir/\n",
            "build_out/x.py": "x = 1\n",
            "node_modules/pkg/index.js": "x\n",
            ".venv/lib/site.py": "x\n",
            ".env": "TOKEN=1\n",
            "config/.env.production": "TOKEN=2\n",
            "keys/server.pem": "-----BEGIN\n",
            "keys/id_rsa": "-----BEGIN\n",
            "src/api_secrets.py": "KEY = 1\n",
            "src/lib.min.js": "x\n",
            "src/image.png": b"\x89PNG\r\n\x1a\n\x00\x00",
            "src/ok.rs": "fn main() {}\n",
            "docs/guide.md": "# Guide\n",
        },
    )
    assert list(FileRules(tmp_path).walk()) == ["app/main.py", "app/util.ts", "docs/guide.md", "src/ok.rs"]
    inc = FileRules(tmp_path, include=["src/**", "app/*.py"])
    assert list(inc.walk()) == ["app/main.py", "src/ok.rs"]
    exc = FileRules(tmp_path, exclude=["*.md", "app/"])
    assert list(exc.walk()) == ["src/ok.rs"]


def test_read_refuses_binary_and_large_files(tmp_path: Path) -> None:
    tree(
        tmp_path,
        {
            "a.py": "x = 'é'\n",
            "b.py": b"x = 1\x00\x00\x01",
            "c.py": "x = 1\n" * 100_000,
            "d.py": b"\xff\xfe\xfd not utf8 at all " * 10,
        },
    )
    rules = FileRules(tmp_path, max_bytes=64 * 1024)
    got = rules.read("a.py")
    assert got is not None and got[0] == "x = 'é'\n"
    assert rules.read("b.py") is None and rules.read("c.py") is None and rules.read("d.py") is None
    assert rules.read("missing.py") is None


def test_looks_binary_allows_a_character_cut_at_the_sniff_boundary() -> None:
    assert not looks_binary("é".encode()[:1])
    assert looks_binary(b"\x00abc")


def test_paths_outside_the_root(tmp_path: Path) -> None:
    rules = FileRules(tmp_path / "ws")
    assert rules.relative(tmp_path / "elsewhere.py") is None
    assert rules.relative(tmp_path / "ws" / "a" / "b.py") == "a/b.py"
