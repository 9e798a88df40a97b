"""Edits offered for preview: positions in UTF-16 columns, the file on disk checked before an edit to a file the
editor does not have open, and a test file only ever extended."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from lsprotocol import types as t
from pygls.workspace import Workspace

from pyserver.server.documents import DocumentRefused
from pyserver.server.edits import Snapshot, end_positions, moved_on, new_or_extended_file, snapshot


def test_positions_count_utf16_columns() -> None:
    text = "s = '𝄞é'\nx = 1\n"
    at = end_positions(text)
    assert at(text.index("é")) == t.Position(line=0, character=7)  # 𝄞 is two UTF-16 code units
    assert at(text.index("x")) == t.Position(line=1, character=0)


def test_a_file_changed_on_disk_refuses_the_edit(tmp_path: Path) -> None:
    ws = Workspace(tmp_path.as_uri())
    f = tmp_path / "test_m.py"
    f.write_text("def test_a():\n    assert True\n")
    before = snapshot(ws, f.as_uri())
    assert before.version is None and before.text is not None and moved_on(ws, before) is None
    f.write_text("def test_a():\n    assert False\n")
    assert "changed since" in str(moved_on(ws, before))
    gone = Snapshot(f.with_name("test_new.py").as_uri(), None, None)
    assert moved_on(ws, gone) is None
    f.with_name("test_new.py").write_text("")
    assert "appeared" in str(moved_on(ws, gone))


def test_only_regular_files_inside_the_workspace_are_read(tmp_path: Path) -> None:
    ws = Workspace(tmp_path.as_uri())
    fifo = tmp_path / "test_pipe.py"
    os.mkfifo(fifo)
    with pytest.raises(DocumentRefused, match="not a regular file"):
        snapshot(ws, fifo.as_uri())  # (and without hanging)
    link = tmp_path / "test_link.py"
    link.symlink_to("/etc/passwd")
    with pytest.raises(DocumentRefused, match="outside the workspace"):
        snapshot(ws, link.as_uri())
    with pytest.raises(DocumentRefused, match="outside the workspace"):
        snapshot(ws, "file:///etc/hostname")
    assert snapshot(ws, (tmp_path / "test_missing.py").as_uri()).text is None


def test_an_existing_test_file_is_extended_not_replaced(tmp_path: Path) -> None:
    old = "def test_a():\n    assert True\n\n"
    before = Snapshot((tmp_path / "t.py").as_uri(), None, old)
    (change,) = new_or_extended_file(before, old.rstrip("\n") + "\n\n\ndef test_b():\n    pass\n", end_positions(old))
    (edit,) = change.edits
    assert (edit.range.start.line, edit.range.start.character) == (1, 15) and edit.range.end.line == 3
    assert edit.new_text == "\n\n\ndef test_b():\n    pass\n"
    with pytest.raises(ValueError, match="does not extend"):
        new_or_extended_file(before, "def test_b():\n    pass\n", end_positions(old))
