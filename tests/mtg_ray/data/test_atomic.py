from pathlib import Path

import pyarrow.parquet as pq
import pytest

from mtg_ray.data import atomic_path, write_jsonl, write_records, write_text
from tests.mtg_ray.data.test_records import make_record


def test_crash_mid_write_keeps_previous_file(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "shard.parquet"
    write_records(path, [make_record()])
    before = path.read_bytes()

    def half_write(table, where, **kwargs):
        Path(where).write_bytes(b"PAR1 partial")
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", half_write)
    with pytest.raises(OSError, match="disk full"):
        write_records(path, [make_record(problem_id="new")])
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["shard.parquet"]


def test_failed_generator_leaves_nothing(tmp_path: Path) -> None:
    def rows():
        yield {"a": 1}
        raise RuntimeError("crash")

    with pytest.raises(RuntimeError):
        write_jsonl(tmp_path / "x.jsonl", rows())
    assert list(tmp_path.iterdir()) == []


def test_writers_replace_whole_files(tmp_path: Path) -> None:
    write_text(tmp_path / "a.txt", "old")
    write_text(tmp_path / "a.txt", "new")
    write_jsonl(tmp_path / "b.jsonl", [{"a": 1}, {"b": "ü"}])
    assert (tmp_path / "a.txt").read_text() == "new"
    assert (tmp_path / "b.jsonl").read_text(encoding="utf-8") == '{"a": 1}\n{"b": "ü"}\n'
    with atomic_path(tmp_path / "c.bin") as tmp:
        tmp.write_bytes(b"x")
        assert not (tmp_path / "c.bin").exists()
    assert (tmp_path / "c.bin").read_bytes() == b"x"
