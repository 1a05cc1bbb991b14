"""Atomic writes: readers see the old file or the whole new one, and failures leave no debris."""

from __future__ import annotations

import json

import pytest

from conus404.core.atomic import TEMP_PREFIX, atomic_write_json, atomic_write_text, temporary_sibling


def test_replaces_the_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "sub" / "out.json"
    atomic_write_json(target, {"a": 1})
    atomic_write_json(target, {"a": 2})
    assert json.loads(target.read_text()) == {"a": 2}
    assert [p.name for p in target.parent.iterdir()] == ["out.json"]


def test_a_failure_keeps_the_old_file_and_removes_the_temporary(tmp_path):
    target = tmp_path / "out.txt"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError), temporary_sibling(target) as tmp:
        tmp.write_text("half of the new")
        assert tmp.parent == target.parent and tmp.name.startswith(TEMP_PREFIX)
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_mode_is_applied(tmp_path):
    target = tmp_path / "env"
    atomic_write_text(target, "x", mode=0o600)
    assert target.stat().st_mode & 0o777 == 0o600
