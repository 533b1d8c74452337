"""Readers for the benchmark test sets: one loader per file, since their field names differ.

These are test sets: read them for evaluation only, never for training.
"""

import ast
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mtg_ray.data.errors import DataError
from mtg_ray.data.jsonl import iter_jsonl, require_text
from mtg_ray.data.records import Problem
from mtg_ray.paths import benchmarks_dir

Row = dict[str, Any]
Where = tuple[str | os.PathLike[str], int]


def _number_text(text: str) -> str:
    """'27.0' -> '27': answers stored as floats read as the integers they are."""
    try:
        value = float(text)
    except ValueError:
        return text.strip()
    return str(int(value)) if value.is_integer() else text.strip()


def _boxed(obj: Row, key: str, where: Where) -> str:
    from mtg_ray.grading import extract_answer

    answer = extract_answer(require_text(obj, key, *where))
    if not answer:
        raise DataError(where[0], "no \\boxed{} answer in the solution", row=where[1], field=key)
    return answer


def _gsm8k_answer(obj: Row, where: Where) -> str:
    text = require_text(obj, "answer", *where)
    match = re.search(r"####\s*(.+?)\s*$", text)
    if not match:
        raise DataError(where[0], "no '#### <number>' in the answer", row=where[1], field="answer")
    return match.group(1).replace(",", "")


def _olympiad_answer(obj: Row, where: Where) -> str:
    raw = obj.get("final_answer")
    if isinstance(raw, str):
        try:
            raw = ast.literal_eval(raw)
        except (ValueError, SyntaxError) as e:
            raise DataError(
                where[0], "not a list literal", row=where[1], field="final_answer"
            ) from e
    if not isinstance(raw, list) or not raw or not all(isinstance(a, str) for a in raw):
        raise DataError(
            where[0], "expected a non-empty list of text", row=where[1], field="final_answer"
        )
    return ", ".join(a.strip().strip("$").strip() for a in raw)


def _olympiad_solution(obj: Row, where: Where) -> str | None:
    raw = obj.get("solution")
    if isinstance(raw, str):
        try:
            raw = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            return raw
    return "\n\n".join(raw) if isinstance(raw, list) and raw else None


# name -> (question field, answer getter, expert-solution getter)
Loader = tuple[str, Callable[[Row, Where], str], Callable[[Row, Where], str | None]]
LOADERS: dict[str, Loader] = {
    "math500": (
        "problem",
        lambda o, w: require_text(o, "answer", *w),
        lambda o, w: o.get("solution"),
    ),
    "aime24": (
        "problem",
        lambda o, w: _number_text(require_text(o, "answer", *w)),
        lambda o, w: o.get("solution"),
    ),
    "amc23": (
        "question",
        lambda o, w: _number_text(require_text(o, "answer", *w)),
        lambda o, w: None,
    ),
    "minerva_math": (
        "problem",
        lambda o, w: _boxed(o, "solution", w),
        lambda o, w: o.get("solution"),
    ),
    "olympiadbench": ("question", _olympiad_answer, _olympiad_solution),
    "gsm8k": ("question", _gsm8k_answer, lambda o, w: o.get("answer")),
}
BENCHMARKS = tuple(LOADERS)


def read_benchmark(name: str, path: str | os.PathLike[str] | None = None) -> list[Problem]:
    """Problems of benchmark `name` (from the benchmarks folder unless `path` is given)."""
    if name not in LOADERS:
        raise DataError(path or name, f"unknown benchmark {name!r}; known: {list(BENCHMARKS)}")
    file = Path(path) if path is not None else benchmarks_dir() / f"{name}.jsonl"
    question_key, answer_of, solution_of = LOADERS[name]
    problems = []
    for row, obj in iter_jsonl(file):
        where: Where = (file, row)
        problems.append(
            Problem(
                problem_id=f"{name}-{row}",
                question=require_text(obj, question_key, *where),
                reference_answer=answer_of(obj, where).strip().strip("$").strip(),
                expert_solution=solution_of(obj, where),
                dataset=name,
            )
        )
    return problems
