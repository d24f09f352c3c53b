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


def test_a_table_folder_replaced_by_two_writers_at_once_is_always_read_whole(tmp_path):
    """Two runs writing the same table folder (``files.atomic_path``) while a third reads it: every read
    gets one writer's whole table, never a part of one."""
    import threading

    import pandas as pd

    from dlflow.io.parquet_shards import ParquetShardsDataset

    path, errors, seen = str(tmp_path / "table"), [], set()
    tables = {name: pd.DataFrame({"writer": [name] * 300, "row": range(300)}) for name in ("x", "y")}

    def write(name: str) -> None:
        dataset = ParquetShardsDataset(filepath=path, part_bytes=1024)  # several parts
        try:
            for _ in range(15):
                dataset.save(tables[name])
        except Exception as error:  # a writer that cannot replace the other's folder
            errors.append(error)

    def read() -> None:
        dataset = ParquetShardsDataset(filepath=path, part_bytes=1024)
        for _ in range(60):
            if not (tmp_path / "table").exists():
                continue
            try:
                table = dataset.load()
            except Exception as error:
                errors.append(error)
                continue
            if len(table) != 300 or table["writer"].nunique() != 1:
                errors.append(f"torn: {len(table)} rows from {sorted(table['writer'].unique())}")
            seen.add(table["writer"].iloc[0])

    threads = [threading.Thread(target=write, args=(n,)) for n in ("x", "y")] + [threading.Thread(target=read)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(ParquetShardsDataset(filepath=path).parts()) > 1
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # nothing left aside
