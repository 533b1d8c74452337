import os
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from mtg_ray.data import (
    atomic_path,
    atomic_write,
    read_records,
    write_jsonl,
    write_records,
    write_text,
)


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("existing", [True, False])
def test_crash_inside_parquet_writer(tmp_path: Path, monkeypatch, make_record, existing) -> None:
    path = tmp_path / "shard.parquet"
    if existing:
        write_records(path, [make_record()])
    before = path.read_bytes() if existing else None

    def half_write(table, where, **kwargs):
        Path(where).write_bytes(b"PAR1 partial")
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", half_write)
    with pytest.raises(OSError, match="disk full"):
        write_records(path, [make_record(problem_id="new")])
    assert names(tmp_path) == (["shard.parquet"] if existing else [])
    if existing:
        assert path.read_bytes() == before
        monkeypatch.undo()
        assert read_records(path) == [make_record()]


def test_records_iterable_failing_half_way(tmp_path: Path, make_record) -> None:
    path = tmp_path / "shard.parquet"
    write_records(path, [make_record()])
    before = path.read_bytes()

    def records():
        yield make_record(problem_id="a")
        raise RuntimeError("rollout worker died")

    with pytest.raises(RuntimeError):
        write_records(path, records())
    assert path.read_bytes() == before and names(tmp_path) == ["shard.parquet"]


def test_jsonl_generator_failing_half_way(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    write_jsonl(path, [{"old": 1}])

    def rows():
        yield {"a": 1}
        raise RuntimeError("crash")

    with pytest.raises(RuntimeError):
        write_jsonl(path, rows())
    assert path.read_text() == '{"old": 1}\n' and names(tmp_path) == ["x.jsonl"]
    with pytest.raises(TypeError):
        write_jsonl(tmp_path / "y.jsonl", [{"a": 1}, {"b": object()}])
    assert names(tmp_path) == ["x.jsonl"]


def test_failed_rename_leaves_target_and_no_temp(tmp_path: Path, monkeypatch) -> None:
    write_text(tmp_path / "a.txt", "old")

    def no_replace(src, dst):
        raise OSError("rename failed")

    monkeypatch.setattr(os, "replace", no_replace)
    with pytest.raises(OSError, match="rename failed"):
        write_text(tmp_path / "a.txt", "new")
    assert (tmp_path / "a.txt").read_text() == "old" and names(tmp_path) == ["a.txt"]


def test_writers_replace_whole_files(tmp_path: Path) -> None:
    write_text(tmp_path / "a.txt", "old text that is longer")
    write_text(tmp_path / "a.txt", "new")
    assert (tmp_path / "a.txt").read_text() == "new"
    write_jsonl(tmp_path / "b.jsonl", [{"a": 1}, {"b": "ü"}])
    assert (tmp_path / "b.jsonl").read_text(encoding="utf-8") == '{"a": 1}\n{"b": "ü"}\n'
    with atomic_write(tmp_path / "sub" / "c.bin", "wb") as f:
        f.write(b"x")
        assert not (tmp_path / "sub" / "c.bin").exists()  # invisible until committed
    assert (tmp_path / "sub" / "c.bin").read_bytes() == b"x"
    with atomic_path(tmp_path / "d.bin") as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".d.bin.")
        tmp.write_bytes(b"y")
    assert (tmp_path / "d.bin").read_bytes() == b"y"
    assert names(tmp_path) == ["a.txt", "b.jsonl", "d.bin", "sub"]


def test_file_modes(tmp_path: Path) -> None:
    write_text(tmp_path / "new.txt", "x")
    assert (tmp_path / "new.txt").stat().st_mode & 0o777 == 0o644  # not mkstemp's 0600
    (tmp_path / "old.txt").write_text("x")
    os.chmod(tmp_path / "old.txt", 0o640)
    write_text(tmp_path / "old.txt", "y")
    assert (tmp_path / "old.txt").stat().st_mode & 0o777 == 0o640
    with pytest.raises(ValueError, match="mode"):
        with atomic_write(tmp_path / "z", "a"):
            pass
