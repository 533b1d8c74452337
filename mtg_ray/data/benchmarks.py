"""Readers for the benchmark test sets: one loader per file, since their field names differ.

These are test sets: read them for evaluation only, never for training.
"""

import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mtg_ray.data.errors import DataError
from mtg_ray.data.jsonl import iter_jsonl, require_text
from mtg_ray.data.problem import Problem
from mtg_ray.paths import benchmarks_dir

Row = dict[str, Any]
Where = tuple[str | os.PathLike[str], int]  # (file, 0-based line) for error messages


def strip_dollars(text: str) -> str:
    """'$2^{1009}$' -> '2^{1009}': drop math delimiters but keep an escaped '\\$' (dollar)."""
    text = text.strip()
    while text.startswith("$"):
        text = text[1:].strip()
    while text.endswith("$") and not text.endswith("\\$"):
        text = text[:-1].strip()
    return text


def _number_text(text: str) -> str:
    """'27.0' -> '27': answers stored as floats read as the integers they are."""
    try:
        value = float(text)
    except ValueError:
        return text.strip()
    return str(int(value)) if math.isfinite(value) and value.is_integer() else text.strip()


def _answer_text(text: str, key: str, where: Where) -> str:
    """The answer without math delimiters; '$$' and the like count as empty."""
    answer = strip_dollars(text)
    if not answer:
        raise DataError(where[0], "empty answer", row=where[1], field=key)
    return answer


def _plain(key: str, numeric: bool = False) -> Callable[[Row, Where], str]:
    def answer(obj: Row, where: Where) -> str:
        text = require_text(obj, key, *where, numbers_ok=numeric)
        return _answer_text(_number_text(text) if numeric else text, key, where)

    return answer


def _boxed(key: str) -> Callable[[Row, Where], str]:
    def answer(obj: Row, where: Where) -> str:
        from mtg_ray.grading import extract_answer  # lazy: grading is a heavier import

        found = extract_answer(require_text(obj, key, *where))
        if found is None:
            raise DataError(where[0], "no \\boxed{} answer", row=where[1], field=key)
        return _answer_text(found, key, where)

    return answer


def _gsm8k_answer(obj: Row, where: Where) -> str:
    text = require_text(obj, "answer", *where)
    match = re.search(r"####\s*(.+?)\s*$", text)
    if not match:
        raise DataError(where[0], "no '#### <answer>' line", row=where[1], field="answer")
    return _answer_text(match.group(1).replace(",", ""), "answer", where)


def _olympiad_answer(obj: Row, where: Where) -> str:
    if "final_answer" not in obj:
        raise DataError(where[0], "missing field", row=where[1], field="final_answer")
    raw = obj["final_answer"]
    if not isinstance(raw, list) or not raw or not all(isinstance(a, str) for a in raw):
        raise DataError(
            where[0], "expected a non-empty list of text", row=where[1], field="final_answer"
        )
    answers = [strip_dollars(a) for a in raw]
    if not all(answers):
        raise DataError(where[0], "empty answer in the list", row=where[1], field="final_answer")
    return ", ".join(answers)


def _solution(key: str) -> Callable[[Row, Where], str | None]:
    """The worked solution if the file has one (a string, or a list of alternatives)."""

    def solution(obj: Row, where: Where) -> str | None:
        raw = obj.get(key)
        if isinstance(raw, list):
            raw = "\n\n".join(s for s in raw if isinstance(s, str)) or None
        if raw is not None and not isinstance(raw, str):
            problem = f"expected text, got {type(raw).__name__}"
            raise DataError(where[0], problem, row=where[1], field=key)
        return raw if raw and raw.strip() else None

    return solution


def _none(obj: Row, where: Where) -> None:
    return None


@dataclass(frozen=True)
class Loader:
    """How one benchmark file spells its fields."""

    question: str
    answer: Callable[[Row, Where], str]
    solution: Callable[[Row, Where], str | None]


LOADERS: dict[str, Loader] = {
    "math500": Loader("problem", _plain("answer"), _solution("solution")),
    "aime24": Loader("problem", _plain("answer", numeric=True), _solution("solution")),
    "amc23": Loader("question", _plain("answer", numeric=True), _none),
    "minerva_math": Loader("problem", _boxed("solution"), _solution("solution")),
    "olympiadbench": Loader("question", _olympiad_answer, _solution("solution")),
    "gsm8k": Loader("question", _gsm8k_answer, _solution("answer")),
}
BENCHMARKS: tuple[str, ...] = tuple(LOADERS)


def _resolve(
    name_or_path: str | os.PathLike[str], path: str | os.PathLike[str] | None
) -> tuple[str, Path]:
    """(benchmark name, file): a known name is looked up in the benchmarks folder; anything
    else is a file path whose stem names the benchmark."""
    if path is not None:
        name, file = str(name_or_path), Path(path)
    elif isinstance(name_or_path, str) and name_or_path in LOADERS:
        name, file = name_or_path, benchmarks_dir() / f"{name_or_path}.jsonl"
    else:
        file = Path(name_or_path)
        name = file.stem
    if name not in LOADERS:
        raise DataError(path or name_or_path, f"unknown benchmark {name!r}; known: {BENCHMARKS}")
    return name, file


def read_benchmark(
    name_or_path: str | os.PathLike[str], path: str | os.PathLike[str] | None = None
) -> list[Problem]:
    """Problems of a benchmark, given its name ("math500", from the benchmarks folder), a file
    named after it (".../math500.jsonl"), or a name and any file in that format."""
    name, file = _resolve(name_or_path, path)
    loader = LOADERS[name]
    problems = []
    for row, obj in iter_jsonl(file):
        where: Where = (file, row)
        question = require_text(obj, loader.question, *where)
        problems.append(
            Problem(
                problem_id=f"{name}-{row}",
                question=question,
                reference_answer=loader.answer(obj, where),
                expert_solution=loader.solution(obj, where),
                dataset=name,
                level=str(obj.get("level", "")),
            )
        )
    return problems
