"""Training records as parquet: table conversion with validation, atomic writes, strict reads."""

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from mtg_ray.data.atomic import atomic_path
from mtg_ray.data.errors import DataError, column_values
from mtg_ray.data.schema import (
    LATER_FIELDS,
    RECORD_FIELDS,
    RECORD_SCHEMA,
    Record,
    check_types,
    validate_record,
)


def records_to_table(
    records: Iterable[Record], path: str | os.PathLike[str] = "<records>"
) -> pa.Table:
    """A RECORD_SCHEMA table; a record of the wrong type or breaking an invariant raises
    DataError naming its position (`path` only labels the message)."""
    records = list(records)
    for row, rec in enumerate(records):
        check_types(rec, path, row)
        validate_record(rec, path, row)
    columns = {name: [getattr(r, name) for r in records] for name in RECORD_FIELDS}
    return pa.Table.from_pydict(columns, schema=RECORD_SCHEMA)


def table_to_records(table: pa.Table, path: str | os.PathLike[str] = "<table>") -> list[Record]:
    """Records from a table, checking columns, types, nulls and invariants row by row.

    Extra columns are ignored, so files from a newer writer with added columns still read.
    """
    for name in LATER_FIELDS:  # files written before the column existed: all null
        if name not in table.column_names:
            nulls = pa.nulls(table.num_rows, RECORD_SCHEMA.field(name).type)
            table = table.append_column(RECORD_SCHEMA.field(name), nulls)
    for field in RECORD_SCHEMA:
        if field.name not in table.column_names:
            raise DataError(path, "missing column", field=field.name)
        actual = table.schema.field(field.name).type
        if actual != field.type:
            raise DataError(path, f"column type {actual}, expected {field.type}", field=field.name)
    columns = {name: column_values(table, name, path) for name in RECORD_FIELDS}
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


def write_records(path: str | os.PathLike[str], records: Iterable[Record]) -> None:
    """Validate, then write parquet atomically: any failure leaves a previous file intact."""
    table = records_to_table(records, path)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def read_records(path: str | os.PathLike[str]) -> list[Record]:
    """Records of a parquet file written by `write_records` (or any file with its columns)."""
    if not Path(path).is_file():
        raise DataError(path, "file not found")
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as e:
        raise DataError(path, f"not a readable parquet file ({e})") from e
    return table_to_records(table, path)
