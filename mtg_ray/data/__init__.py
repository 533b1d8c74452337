"""Data: the training-record schema, readers for training and benchmark data, atomic writers.

Bad input raises `DataError` naming the file, row and field; every writer here is atomic.
"""

from mtg_ray.data.atomic import atomic_path, atomic_write, write_jsonl, write_text
from mtg_ray.data.benchmarks import BENCHMARKS, read_benchmark
from mtg_ray.data.errors import DataError
from mtg_ray.data.jsonl import iter_jsonl
from mtg_ray.data.problem import Problem
from mtg_ray.data.records import read_records, records_to_table, table_to_records, write_records
from mtg_ray.data.schema import RECORD_SCHEMA, SOURCES, Record, validate_record
from mtg_ray.data.sft import read_sft_parquet

__all__ = [
    "BENCHMARKS",
    "RECORD_SCHEMA",
    "SOURCES",
    "DataError",
    "Problem",
    "Record",
    "atomic_path",
    "atomic_write",
    "iter_jsonl",
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
