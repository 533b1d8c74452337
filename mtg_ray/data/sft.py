"""Reader for verl-style SFT parquet, the format of the method's own training command.

verl rows carry the question and the solution inside the `extra_info` struct (keys set by the
trainer's `prompt_key`/`response_key`, `question`/`answer` by default) and, when known, the
reference answer in `reward_model.ground_truth`. Other columns (`data_source`, `prompt`,
`ability`) are not needed and are ignored.
"""

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from mtg_ray.data.errors import DataError, column_values
from mtg_ray.data.problem import Problem


def _text(value: Any, path: Path, row: int, field: str) -> str:
    if value is None:
        raise DataError(path, "missing value", row=row, field=field)
    if not isinstance(value, str):
        raise DataError(path, f"expected text, got {type(value).__name__}", row=row, field=field)
    if not value.strip():
        raise DataError(path, "empty text", row=row, field=field)
    return value


def _struct_column(table: pa.Table, name: str, path: Path, required: bool) -> list[dict] | None:
    """The rows of a struct column as dicts (None where absent and not required)."""
    if name not in table.column_names:
        if required:
            raise DataError(path, "missing column", field=name)
        return None
    typ = table.schema.field(name).type
    if not pa.types.is_struct(typ):
        raise DataError(path, f"expected a struct column, got {typ}", field=name)
    return column_values(table, name, path)


def _ground_truth(reward: dict | None, path: Path, row: int) -> str | None:
    """reward_model.ground_truth as text, or None when absent or empty."""
    truth = (reward or {}).get("ground_truth")
    if truth is None:
        return None
    if isinstance(truth, bool) or not isinstance(truth, str | int | float):
        problem = f"expected text, got {type(truth).__name__}"
        raise DataError(path, problem, row=row, field="reward_model.ground_truth")
    text = str(truth).strip()
    return text or None


def read_sft_parquet(
    path: str | os.PathLike[str], prompt_key: str = "question", response_key: str = "answer"
) -> list[Problem]:
    """Problems from a verl SFT parquet file: question = extra_info[prompt_key], expert solution
    = extra_info[response_key], reference answer = reward_model.ground_truth when present and
    non-empty, else the final \\boxed{} answer of the expert solution.

    problem_id is extra_info.index when present, else "{file stem}-{row}".
    """
    from mtg_ray.grading import extract_answer  # lazy: grading is a heavier import

    file = Path(path)
    if not file.is_file():
        raise DataError(file, "file not found")
    try:
        table = pq.read_table(file)
    except (pa.ArrowException, OSError) as e:
        raise DataError(file, f"not a readable parquet file ({e})") from e
    extras = _struct_column(table, "extra_info", file, required=True)
    rewards = _struct_column(table, "reward_model", file, required=False)
    extra_type = table.schema.field("extra_info").type
    for key in (prompt_key, response_key):
        if extra_type.get_field_index(key) < 0:
            raise DataError(file, "missing key", field=f"extra_info.{key}")

    problems = []
    for row, extra in enumerate(extras):
        if extra is None:
            raise DataError(file, "missing value", row=row, field="extra_info")
        question = _text(extra.get(prompt_key), file, row, f"extra_info.{prompt_key}")
        solution = _text(extra.get(response_key), file, row, f"extra_info.{response_key}")
        answer = _ground_truth(rewards[row], file, row) if rewards else None
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


def sft_from_numinamath(
    paths: Sequence[str | os.PathLike[str]], rows: int = 50_000
) -> tuple[pa.Table, int]:
    """NuminaMath-CoT (columns `problem`, `solution`; the files in the order given) as verl SFT
    rows for `read_sft_parquet`: its first `rows` rows, as the authors take them (not a random
    sample), less those whose solution has no `\\boxed{}` answer, which the paper drops (50k rows
    give about 48k). Each kept row carries its NuminaMath row number as `extra_info.index` and the
    boxed answer as `reward_model.ground_truth`. Returns the table and how many rows were dropped.
    """
    from mtg_ray.grading.extract import boxed_answer

    questions: list[str] = []
    solutions: list[str] = []
    for path in map(Path, paths):
        if len(questions) >= rows:
            break
        try:
            table = pq.read_table(path, columns=["problem", "solution"])
        except (pa.ArrowException, OSError) as e:
            field = next((c for c in ("problem", "solution") if c in str(e)), None)
            raise DataError(path, f"not a NuminaMath-CoT parquet file ({e})", field=field) from e
        questions += column_values(table, "problem", path)
        solutions += column_values(table, "solution", path)
    extra, truth, dropped = [], [], 0
    pairs = zip(questions[:rows], solutions[:rows], strict=True)
    for index, (question, solution) in enumerate(pairs):
        answer = boxed_answer(solution or "")
        if not answer or not (question or "").strip():
            dropped += 1
            continue
        extra.append({"question": question, "answer": solution, "index": index})
        truth.append({"ground_truth": answer, "style": "rule"})
    table = pa.table(
        {"data_source": ["numinamath_cot"] * len(extra), "extra_info": extra, "reward_model": truth}
    )
    return table, dropped
