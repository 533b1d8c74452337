"""Training records: one (prompt, response) pair with full provenance, stored as parquet.

`Record` and `RECORD_SCHEMA` mirror each other field for field; column names are the same names
used in configs and metrics.
"""

import math
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from mtg_ray.data.atomic import atomic_path
from mtg_ray.data.errors import DataError

SOURCES = ("self", "guided", "expert")


@dataclass(frozen=True)
class Problem:
    """A problem with its reference answer and, for training data, the expert solution."""

    problem_id: str
    question: str
    reference_answer: str
    expert_solution: str | None = None
    dataset: str = ""


@dataclass(frozen=True)
class Record:
    """A training record. Expert records have no behaviour log-probs, version -1 and no sampling."""

    problem_id: str
    prompt: str
    reference_answer: str
    expert_solution: str
    response: str
    prompt_token_ids: list[int]
    response_token_ids: list[int]
    source: str
    correct: bool
    behaviour_logprobs: list[float] | None
    policy_version: int
    temperature: float | None
    top_p: float | None
    max_tokens: int | None
    seed: int | None


RECORD_SCHEMA = pa.schema(
    [
        pa.field("problem_id", pa.string(), nullable=False),
        pa.field("prompt", pa.string(), nullable=False),
        pa.field("reference_answer", pa.string(), nullable=False),
        pa.field("expert_solution", pa.string(), nullable=False),
        pa.field("response", pa.string(), nullable=False),
        pa.field("prompt_token_ids", pa.list_(pa.int32()), nullable=False),
        pa.field("response_token_ids", pa.list_(pa.int32()), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("correct", pa.bool_(), nullable=False),
        pa.field("behaviour_logprobs", pa.list_(pa.float32()), nullable=True),
        pa.field("policy_version", pa.int64(), nullable=False),
        pa.field("temperature", pa.float32(), nullable=True),
        pa.field("top_p", pa.float32(), nullable=True),
        pa.field("max_tokens", pa.int32(), nullable=True),
        pa.field("seed", pa.int64(), nullable=True),
    ]
)
RECORD_FIELDS = tuple(f.name for f in fields(Record))


def validate_record(rec: Record, path: str | os.PathLike[str], row: int) -> None:
    """Raise DataError for a record that breaks the schema's invariants."""

    def bad(field: str, problem: str) -> DataError:
        return DataError(path, problem, row=row, field=field)

    if rec.source not in SOURCES:
        raise bad("source", f"must be one of {SOURCES}, got {rec.source!r}")
    if not rec.response_token_ids:
        raise bad("response_token_ids", "empty response")
    if rec.behaviour_logprobs is None:
        if rec.source != "expert":
            raise bad("behaviour_logprobs", f"missing for a {rec.source!r} record")
        return
    if len(rec.behaviour_logprobs) != len(rec.response_token_ids):
        raise bad(
            "behaviour_logprobs",
            f"{len(rec.behaviour_logprobs)} log-probs for {len(rec.response_token_ids)} tokens",
        )
    for t, lp in enumerate(rec.behaviour_logprobs):
        if not (math.isfinite(lp) and lp <= 0.0):
            raise bad("behaviour_logprobs", f"token {t}: log-prob {lp} is not finite and <= 0")


def records_to_table(records: list[Record]) -> pa.Table:
    columns = {name: [getattr(r, name) for r in records] for name in RECORD_FIELDS}
    return pa.Table.from_pydict(columns, schema=RECORD_SCHEMA)


def table_to_records(table: pa.Table, path: str | os.PathLike[str] = "<table>") -> list[Record]:
    """Records from a table, checking columns, types, nulls and invariants row by row."""
    for field in RECORD_SCHEMA:
        if field.name not in table.column_names:
            raise DataError(path, "missing column", field=field.name)
        actual = table.schema.field(field.name).type
        if actual != field.type:
            raise DataError(path, f"type {actual}, expected {field.type}", field=field.name)
    columns = {name: table.column(name).to_pylist() for name in RECORD_FIELDS}
    out: list[Record] = []
    for row in range(table.num_rows):
        values: dict[str, Any] = {name: columns[name][row] for name in RECORD_FIELDS}
        for field in RECORD_SCHEMA:
            if values[field.name] is None and not field.nullable:
                raise DataError(path, "null value", row=row, field=field.name)
        rec = Record(**values)
        validate_record(rec, path, row)
        out.append(rec)
    return out


def write_records(path: str | os.PathLike[str], records: list[Record]) -> None:
    """Validate, then write parquet atomically: a failure leaves any previous file intact."""
    for row, rec in enumerate(records):
        validate_record(rec, path, row)
    table = records_to_table(records)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def read_records(path: str | os.PathLike[str]) -> list[Record]:
    if not Path(path).is_file():
        raise DataError(path, "file not found")
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as e:
        raise DataError(path, f"not a readable parquet file ({e})") from e
    return table_to_records(table, path)
