from dataclasses import fields, replace
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mtg_ray.data import RECORD_SCHEMA, DataError, Record, read_records, write_records


def make_record(**overrides) -> Record:
    base = Record(
        problem_id="p0",
        prompt="Problem: 1+1?\nSolution:",
        reference_answer="2",
        expert_solution="1+1=2 \\boxed{2}",
        response="one plus one \\boxed{2}",
        prompt_token_ids=[1, 2, 3],
        response_token_ids=[4, 5],
        source="self",
        correct=True,
        behaviour_logprobs=[-0.25, -1.5],
        policy_version=3,
        temperature=1.0,
        top_p=1.0,
        max_tokens=64,
        seed=7,
    )
    return replace(base, **overrides)


EXPERT = make_record(
    source="expert",
    behaviour_logprobs=None,
    policy_version=-1,
    temperature=None,
    top_p=None,
    max_tokens=None,
    seed=None,
)


def test_schema_mirrors_dataclass() -> None:
    assert [f.name for f in fields(Record)] == RECORD_SCHEMA.names


def test_round_trip(tmp_path: Path) -> None:
    records = [make_record(), EXPERT, make_record(problem_id="p1", source="guided")]
    path = tmp_path / "out" / "shard.parquet"
    write_records(path, records)
    assert pq.read_schema(path).remove_metadata() == RECORD_SCHEMA
    assert read_records(path) == records


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        (make_record(source="teacher"), "source"),
        (make_record(behaviour_logprobs=[-0.1]), "behaviour_logprobs"),
        (make_record(behaviour_logprobs=[-0.1, 0.5]), "behaviour_logprobs"),
        (make_record(behaviour_logprobs=[-0.1, float("nan")]), "behaviour_logprobs"),
        (make_record(behaviour_logprobs=None), "behaviour_logprobs"),
        (make_record(response_token_ids=[], behaviour_logprobs=[]), "response_token_ids"),
    ],
)
def test_invalid_record_names_row_and_field(tmp_path: Path, bad: Record, field: str) -> None:
    path = tmp_path / "bad.parquet"
    with pytest.raises(DataError) as err:
        write_records(path, [make_record(), bad])
    assert err.value.row == 1 and err.value.field == field
    assert f"row 1, field '{field}'" in str(err.value) and str(path) in str(err.value)
    assert not path.exists()


def test_reading_bad_tables(tmp_path: Path) -> None:
    good = pa.Table.from_pylist([vars(make_record())], schema=RECORD_SCHEMA)
    missing = tmp_path / "missing.parquet"
    pq.write_table(good.drop_columns(["source"]), missing)
    with pytest.raises(DataError, match="field 'source': missing column"):
        read_records(missing)
    wrong_type = tmp_path / "wrong.parquet"
    pq.write_table(good.set_column(10, "policy_version", pa.array(["3"])), wrong_type)
    with pytest.raises(DataError, match="field 'policy_version': type string"):
        read_records(wrong_type)
    invalid = tmp_path / "invalid.parquet"
    pq.write_table(good.set_column(7, "source", pa.array(["robot"])), invalid)
    with pytest.raises(DataError, match="row 0, field 'source'"):
        read_records(invalid)
    with pytest.raises(DataError, match="file not found"):
        read_records(tmp_path / "nope.parquet")
    (tmp_path / "junk.parquet").write_bytes(b"not parquet")
    with pytest.raises(DataError, match="not a readable parquet"):
        read_records(tmp_path / "junk.parquet")
