"""Data: the training-record schema, readers for training and benchmark data, atomic writers.

Bad input raises `DataError` naming the file, row and field.
"""

from mtg_ray.data.atomic import atomic_path, write_jsonl, write_text
from mtg_ray.data.benchmarks import BENCHMARKS, read_benchmark
from mtg_ray.data.errors import DataError
from mtg_ray.data.records import (
    RECORD_SCHEMA,
    SOURCES,
    Problem,
    Record,
    read_records,
    records_to_table,
    table_to_records,
    validate_record,
    write_records,
)
from mtg_ray.data.sft import read_sft_parquet

__all__ = [
    "BENCHMARKS",
    "RECORD_SCHEMA",
    "SOURCES",
    "DataError",
    "Problem",
    "Record",
    "atomic_path",
    "read_benchmark",
    "read_records",
    "read_sft_parquet",
    "records_to_table",
    "table_to_records",
    "validate_record",
    "write_jsonl",
    "write_records",
    "write_text",
]
