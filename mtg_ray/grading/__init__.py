"""Grading: does a model response's final answer equal the reference answer?

`grade(response, reference)` extracts the response's final answer (`extract_answer`, linear in
the response and capped in length), settles the common cases in process (normalised text, exact
numbers: `normalize.fast_verdict`), and sends the rest to a symbolic check (math-verify on
sympy) in a sandbox process with a hard per-check timeout, so no input can hang or crash the
caller. An answer that hedges between values is wrong. Safe from many threads and processes.
"""

import re
from collections.abc import Callable, Sequence

from mtg_ray.grading.extract import extract_answer
from mtg_ray.grading.normalize import fast_verdict
from mtg_ray.grading.sandbox import symbolic_check

# Longer answers are compared as text only: real final answers are short, and long ones are
# where parsers blow up (deep nesting, garbage).
MAX_SYMBOLIC_CHARS = 400
DEFAULT_TIMEOUT = 1.0
# An answer that hedges between values ("8 (or maybe 9)") is wrong, unless the reference itself
# has such a word (e.g. "x < 1 or x > 2").
_HEDGE = re.compile(r"(?<![A-Za-z])(?:or|maybe|perhaps|possibly|either)(?![A-Za-z])", re.I)


def _prepare(response: str, reference: str) -> tuple[bool | None, tuple[str, str] | None]:
    """(verdict, None) when decided in process, else (None, (pred, ref)) for the sandbox."""
    pred = extract_answer(response)
    ref = reference.strip()
    if not pred or not ref:
        return False, None
    if _HEDGE.search(pred) and not _HEDGE.search(ref):
        return False, None
    if pred.strip().lower() in ("nan", "+nan", "-nan"):  # not a value: equal to nothing
        return False, None
    verdict = fast_verdict(pred, ref)
    if verdict is not None:
        return verdict, None
    if len(pred) > MAX_SYMBOLIC_CHARS or len(ref) > MAX_SYMBOLIC_CHARS:
        return False, None
    return None, (pred, ref)


def grade_many(pairs: Sequence[tuple[str, str]], timeout: float = DEFAULT_TIMEOUT) -> list[bool]:
    """`grade` for many (response, reference) pairs, with one sandbox round trip."""
    verdicts: list[bool | None] = []
    pending: list[tuple[str, str]] = []
    for response, reference in pairs:
        verdict, job = _prepare(response, reference)
        verdicts.append(verdict)
        if job is not None:
            pending.append(job)
    checked = iter(symbolic_check(pending, timeout) if pending else [])
    return [v if v is not None else next(checked) for v in verdicts]


def grade(response: str, reference: str, timeout: float = DEFAULT_TIMEOUT) -> bool:
    """Whether the final answer of `response` is equivalent to `reference`. Never raises."""
    try:
        return grade_many([(response, reference)], timeout)[0]
    except Exception:
        return False


# Anything that grades (response, reference) pairs in order: `grade_many`, or the drivers' Ray
# tasks (`mtg_ray.pipelines.groups.grading.grade_parallel`) behind a closure.
Grader = Callable[[Sequence[tuple[str, str]]], list[bool]]

__all__ = ["Grader", "extract_answer", "grade", "grade_many"]
