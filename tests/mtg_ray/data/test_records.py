from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mtg_ray.data import (
    RECORD_SCHEMA,
    DataError,
    read_records,
    records_to_table,
    table_to_records,
    write_records,
)


def test_round_trip(tmp_path: Path, make_record) -> None:
    records = [
        make_record(),
        make_record("expert"),
        make_record("guided", problem_id="p2", seed=None, behaviour_logprobs=[-0.3, -2.2]),
        make_record("expert", problem_id="p3", standin_logprobs=[-0.1, -0.2, -0.3]),
    ]
    path = tmp_path / "out" / "shard.parquet"
    write_records(path, records)
    assert pq.read_schema(path).remove_metadata().equals(RECORD_SCHEMA)
    assert read_records(path) == records
    assert table_to_records(records_to_table(records)) == records


def test_files_written_before_a_later_column_read_it_as_null(tmp_path: Path, make_record) -> None:
    records = [make_record(), make_record("expert")]
    old = tmp_path / "old.parquet"
    pq.write_table(records_to_table(records).drop_columns(["standin_logprobs"]), old)
    assert read_records(old) == records


def test_empty_file_keeps_schema(tmp_path: Path) -> None:
    path = tmp_path / "empty.parquet"
    write_records(path, iter([]))
    assert pq.read_schema(path).remove_metadata().equals(RECORD_SCHEMA)
    assert read_records(path) == []


def good_table(make_record, rows: int = 2) -> pa.Table:
    records = [make_record(problem_id=f"p{i}") for i in range(rows)]
    return records_to_table(records)


def test_missing_and_mistyped_columns(tmp_path: Path, make_record) -> None:
    good = good_table(make_record)
    missing = tmp_path / "missing.parquet"
    pq.write_table(good.drop_columns(["source"]), missing)
    with pytest.raises(DataError, match="field 'source': missing column") as err:
        read_records(missing)
    assert err.value.path == str(missing) and err.value.row is None
    wrong = tmp_path / "wrong.parquet"
    i = good.schema.get_field_index("policy_version")
    pq.write_table(good.set_column(i, "policy_version", pa.array(["3", "4"])), wrong)
    with pytest.raises(DataError, match="field 'policy_version': column type string"):
        read_records(wrong)


def test_bad_rows_are_named(tmp_path: Path, make_record) -> None:
    good = good_table(make_record)
    i = good.schema.get_field_index("source")
    invalid = tmp_path / "invalid.parquet"
    pq.write_table(good.set_column(i, "source", pa.array(["self", "robot"])), invalid)
    with pytest.raises(DataError, match=r"invalid.parquet: row 1, field 'source': must be one of"):
        read_records(invalid)
    i = good.schema.get_field_index("response")
    nulls = good.set_column(i, pa.field("response", pa.string()), pa.array(["ok", None]))
    with pytest.raises(DataError, match="row 1, field 'response': null value"):
        table_to_records(nulls, "mem")
    i = good.schema.get_field_index("behaviour_logprobs")
    positive = pa.array([[-0.5, -0.5], [-0.5, 0.25]], pa.list_(pa.float32()))
    with pytest.raises(DataError, match="row 1, field 'behaviour_logprobs': token 1"):
        table_to_records(good.set_column(i, "behaviour_logprobs", positive))


def test_extra_columns_are_ignored(make_record) -> None:
    table = good_table(make_record).append_column("note", pa.array(["a", "b"]))
    assert [r.problem_id for r in table_to_records(table)] == ["p0", "p1"]


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="file not found"):
        read_records(tmp_path / "nope.parquet")
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"not parquet")
    with pytest.raises(DataError, match="junk.parquet: not a readable parquet"):
        read_records(junk)
    assert junk.read_bytes() == b"not parquet"


def test_invalid_utf8_in_a_text_column_names_its_row_and_field(tmp_path: Path, make_record):
    table = records_to_table([make_record(), make_record()])
    bad = pa.array([b"fine", b"caf\xe9 \xff"], type=pa.binary()).view(pa.string())
    table = table.set_column(table.column_names.index("response"), "response", bad)
    pq.write_table(table, tmp_path / "bad.parquet")
    with pytest.raises(DataError, match=r"bad.parquet: row 1, field 'response': text is not valid"):
        read_records(tmp_path / "bad.parquet")
