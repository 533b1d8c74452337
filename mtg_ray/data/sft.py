"""Reader for verl-style SFT parquet, the format of the method's own training command.

verl rows carry the question and the solution inside the `extra_info` struct (keys set by the
trainer's `prompt_key`/`response_key`, `question`/`answer` by default) and, when known, the
reference answer in `reward_model.ground_truth`.
"""

import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from mtg_ray.data.errors import DataError
from mtg_ray.data.records import Problem


def _text(value: Any, path: Path, row: int, field: str) -> str:
    if value is None:
        raise DataError(path, "missing value", row=row, field=field)
    if not isinstance(value, str):
        raise DataError(path, f"expected text, got {type(value).__name__}", row=row, field=field)
    if not value.strip():
        raise DataError(path, "empty text", row=row, field=field)
    return value


def read_sft_parquet(
    path: str | os.PathLike[str], prompt_key: str = "question", response_key: str = "answer"
) -> list[Problem]:
    """Problems (question, expert solution, reference answer) from a verl SFT parquet file."""
    from mtg_ray.grading import extract_answer

    file = Path(path)
    if not file.is_file():
        raise DataError(file, "file not found")
    try:
        table = pq.read_table(file)
    except (pa.ArrowException, OSError) as e:
        raise DataError(file, f"not a readable parquet file ({e})") from e
    if "extra_info" not in table.column_names:
        raise DataError(file, "missing column", field="extra_info")
    extra_type = table.schema.field("extra_info").type
    if not pa.types.is_struct(extra_type):
        raise DataError(file, f"expected a struct, got {extra_type}", field="extra_info")
    for key in (prompt_key, response_key):
        if extra_type.get_field_index(key) < 0:
            raise DataError(file, "missing key", field=f"extra_info.{key}")
    extras = table.column("extra_info").to_pylist()
    rewards = (
        table.column("reward_model").to_pylist() if "reward_model" in table.column_names else None
    )

    problems = []
    for row, extra in enumerate(extras):
        if extra is None:
            raise DataError(file, "missing value", row=row, field="extra_info")
        question = _text(extra.get(prompt_key), file, row, f"extra_info.{prompt_key}")
        solution = _text(extra.get(response_key), file, row, f"extra_info.{response_key}")
        truth = (rewards[row] or {}).get("ground_truth") if rewards else None
        answer = str(truth).strip() if truth is not None and str(truth).strip() else None
        if answer is None:
            answer = extract_answer(solution)
        if not answer:
            raise DataError(
                file,
                "no reference answer: no reward_model.ground_truth, no \\boxed{} in the solution",
                row=row,
                field=f"extra_info.{response_key}",
            )
        index = extra.get("index")
        problems.append(
            Problem(
                problem_id=str(index) if index is not None else f"{file.stem}-{row}",
                question=question,
                reference_answer=answer,
                expert_solution=solution,
                dataset=file.stem,
            )
        )
    return problems
