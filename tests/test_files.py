"""The one atomic write and the one JSON digest."""

from __future__ import annotations

import pytest

from dlflow.files import atomic_path, atomic_write, json_digest


def test_a_failed_write_leaves_the_previous_file_and_no_temporary(tmp_path):
    target = tmp_path / "deep" / "state.txt"
    with atomic_write(target, "w", encoding="utf-8") as stream:
        stream.write("first")
    with pytest.raises(RuntimeError), atomic_write(target, "w") as stream:
        stream.write("half")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "first"
    assert [p.name for p in target.parent.iterdir()] == ["state.txt"]


def test_a_folder_replaces_a_folder_as_a_whole(tmp_path):
    target = tmp_path / "plots"
    with atomic_path(target) as staging:
        staging.mkdir()
        (staging / "old.png").write_bytes(b"1")
    with atomic_path(target) as staging:
        staging.mkdir()
        (staging / "new.png").write_bytes(b"2")
    assert [p.name for p in target.iterdir()] == ["new.png"]
    assert [p.name for p in tmp_path.iterdir()] == ["plots"]


def test_json_digest_ignores_key_order_and_can_be_short():
    assert json_digest({"a": 1, "b": [1, 2]}) == json_digest({"b": [1, 2], "a": 1})
    assert json_digest({"a": 1}) != json_digest({"a": 2})
    assert len(json_digest({"a": 1}, 16)) == 16 and len(json_digest({"a": 1})) == 64
