"""The unit the readers produce: a question with its reference answer (and expert solution)."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """A problem to solve.

    `reference_answer` is what the grader compares a response's final answer with;
    `expert_solution` is the human demonstration (training data; some benchmarks have one too);
    `dataset` names where it came from (a benchmark name, or the training file's stem);
    `level` its difficulty level where the source has one (MATH500, the tiny world), else "".
    """

    problem_id: str
    question: str
    reference_answer: str
    expert_solution: str | None = None
    dataset: str = ""
    level: str = ""
