"""The training record: one (prompt, response) pair with the provenance the objectives need.

`Record` and `RECORD_SCHEMA` mirror each other field for field (a test keeps them in sync); the
column names are also the names used in configs and metrics. Expert records (stage-3 fallback)
have no behaviour policy: null log-probs, policy_version -1 and null sampling params. Teacher
records were sampled by a teacher model (`rewrite.rewriter`): their behaviour log-probs are the
teacher's, and `behaviour_prompt` is the prompt it saw.
"""

import math
import numbers
import os
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import pyarrow as pa

from mtg_ray.data.errors import DataError

SOURCES = ("self", "guided", "teacher", "expert")
EXPERT_POLICY_VERSION = -1


def _is_number(x: Any) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool | np.bool_)


def _float32(x: float) -> float:
    return float(np.float32(x))


@dataclass(frozen=True)
class Record:
    """A training record (one parquet row of RECORD_SCHEMA).

    Token-id sequences are stored as lists, and float fields are rounded to float32 on
    construction, as parquet stores them: a record compares equal to its own round trip.
    """

    problem_id: str
    prompt: str  # the plain prompt the response was sampled for (and is trained on): no reference
    reference_answer: str
    expert_solution: str
    response: str
    prompt_token_ids: list[int]
    response_token_ids: list[int]
    source: str  # one of SOURCES
    correct: bool  # the grader's verdict on `response`
    behaviour_logprobs: list[float] | None  # log pi_beta per response token; None for expert
    policy_version: int  # version of the rollout policy that sampled it; -1 for expert
    temperature: float | None
    top_p: float | None
    max_tokens: int | None
    seed: int | None
    # log b per response token under a stated stand-in for an expert record's unknown
    # behaviour (online.expert_rows=ratio: the sampling policy shown the reference); else None
    standin_logprobs: list[float] | None = None
    # the prompt the behaviour policy sampled the response for, when it is not `prompt` (a
    # teacher's, in its own format, with or without the reference); else None
    behaviour_prompt: str | None = None

    def __post_init__(self) -> None:
        for name in ("prompt_token_ids", "response_token_ids"):
            value = getattr(self, name)
            if isinstance(value, Sequence) and not isinstance(value, str | list):
                object.__setattr__(self, name, list(value))
        for name in ("behaviour_logprobs", "standin_logprobs"):
            lps = getattr(self, name)
            if isinstance(lps, Sequence) and not isinstance(lps, str) and all(map(_is_number, lps)):
                object.__setattr__(self, name, np.asarray(lps, dtype=np.float32).tolist())
        for name in ("temperature", "top_p"):
            value = getattr(self, name)
            if _is_number(value):
                object.__setattr__(self, name, _float32(value))


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
        pa.field("standin_logprobs", pa.list_(pa.float32()), nullable=True),
        pa.field("behaviour_prompt", pa.string(), nullable=True),
    ]
)
RECORD_FIELDS = tuple(f.name for f in fields(Record))
# Columns added after files were first written: a file without one reads it as nulls.
LATER_FIELDS = ("standin_logprobs", "behaviour_prompt")
# Present for sampled records, null for expert ones (seed may also be null for sampled ones).
SAMPLING_FIELDS = ("temperature", "top_p", "max_tokens")
_INT_RANGE = {pa.int32(): (-(2**31), 2**31 - 1), pa.int64(): (-(2**63), 2**63 - 1)}


def _type_problem(value: Any, typ: pa.DataType) -> str | None:
    """Why `value` cannot be stored as `typ`, or None when it can."""
    if pa.types.is_list(typ):
        if not isinstance(value, list | tuple):
            return f"expected a list, got {type(value).__name__}"
        for i, item in enumerate(value):
            problem = _type_problem(item, typ.value_type)
            if problem:
                return f"item {i}: {problem}"
        return None
    if pa.types.is_string(typ):
        ok = isinstance(value, str)
    elif pa.types.is_boolean(typ):
        ok = isinstance(value, bool | np.bool_)
    elif pa.types.is_floating(typ):
        ok = _is_number(value)
    else:  # integers
        if not isinstance(value, numbers.Integral) or isinstance(value, bool | np.bool_):
            return f"expected an integer, got {type(value).__name__}"
        lo, hi = _INT_RANGE[typ]
        return None if lo <= value <= hi else f"{value} does not fit {typ}"
    return None if ok else f"expected {typ}, got {type(value).__name__}"


def check_types(rec: Record, path: str | os.PathLike[str], row: int) -> None:
    """Raise DataError unless every field can be stored in its RECORD_SCHEMA column."""
    for field in RECORD_SCHEMA:
        value = getattr(rec, field.name)
        if value is None:
            if not field.nullable:
                raise DataError(path, "null value", row=row, field=field.name)
            continue
        problem = _type_problem(value, field.type)
        if problem:
            raise DataError(path, problem, row=row, field=field.name)


def validate_record(rec: Record, path: str | os.PathLike[str], row: int) -> None:
    """Raise DataError for a (well-typed) record that breaks the schema's invariants."""

    def bad(field: str, problem: str) -> DataError:
        return DataError(path, problem, row=row, field=field)

    for name in ("problem_id", "prompt", "reference_answer", "response"):
        if not getattr(rec, name).strip():
            raise bad(name, "empty text")
    for name in ("prompt_token_ids", "response_token_ids"):
        ids = getattr(rec, name)
        if not ids:
            raise bad(name, "no tokens")
        if min(ids) < 0:
            raise bad(name, f"negative token id {min(ids)}")
    if rec.source not in SOURCES:
        raise bad("source", f"must be one of {SOURCES}, got {rec.source!r}")

    if rec.standin_logprobs is not None:
        if rec.source != "expert":
            raise bad("standin_logprobs", f"only an expert record has them, not {rec.source!r}")
        _check_logprobs(rec, "standin_logprobs", bad)
    if rec.behaviour_prompt is not None and rec.source != "teacher":
        raise bad("behaviour_prompt", f"only a teacher record has one, not {rec.source!r}")
    if rec.source == "expert":
        if rec.behaviour_logprobs is not None:
            raise bad("behaviour_logprobs", "must be null for an expert record (pi_beta unknown)")
        if rec.policy_version != EXPERT_POLICY_VERSION:
            raise bad(
                "policy_version", f"must be -1 for an expert record, got {rec.policy_version}"
            )
        for name in (*SAMPLING_FIELDS, "seed"):
            if getattr(rec, name) is not None:
                raise bad(name, "must be null for an expert record (it was not sampled)")
        return

    if rec.policy_version < 0:
        raise bad("policy_version", f"must be >= 0 for a sampled record, got {rec.policy_version}")
    for name in SAMPLING_FIELDS:
        if getattr(rec, name) is None:
            raise bad(name, f"missing for a {rec.source!r} record")
    if not (math.isfinite(rec.temperature) and rec.temperature >= 0):
        raise bad("temperature", f"must be finite and >= 0, got {rec.temperature}")
    if not 0 < rec.top_p <= 1:
        raise bad("top_p", f"must be in (0, 1], got {rec.top_p}")
    if rec.max_tokens < 1:
        raise bad("max_tokens", f"must be >= 1, got {rec.max_tokens}")
    if rec.behaviour_logprobs is None:
        raise bad("behaviour_logprobs", f"missing for a {rec.source!r} record")
    _check_logprobs(rec, "behaviour_logprobs", bad)


def _check_logprobs(rec: Record, name: str, bad: Any) -> None:
    """One finite log-prob <= 0 per response token in field `name`."""
    lps = getattr(rec, name)
    if len(lps) != len(rec.response_token_ids):
        raise bad(name, f"{len(lps)} log-probs for {len(rec.response_token_ids)} response tokens")
    arr = np.asarray(lps, dtype=np.float64)
    wrong = np.flatnonzero(~(np.isfinite(arr) & (arr <= 0.0)))
    if wrong.size:
        t = int(wrong[0])
        raise bad(name, f"token {t}: log-prob {lps[t]} is not finite and <= 0")
