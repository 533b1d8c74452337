"""grade() on real benchmark data and on each equivalence class."""

import json
import re

import pytest

from mtg_ray.data import read_benchmark
from mtg_ray.grading import extract_answer, grade, grade_many


def test_math500_solutions_grade_true_against_their_answers(benchmarks) -> None:
    problems = read_benchmark("math500", benchmarks / "math500.jsonl")
    verdicts = grade_many([(p.expert_solution or "", p.reference_answer) for p in problems])
    rate = sum(verdicts) / len(verdicts)
    print(f"MATH500 self-consistency: {rate:.4f}")
    assert len(verdicts) == 500 and rate >= 0.99


def _plain_int(text: str) -> int | None:
    return int(text) if re.fullmatch(r"-?\d+", text.strip()) else None


def test_math500_perturbed_numbers_grade_false(benchmarks) -> None:
    problems = read_benchmark("math500", benchmarks / "math500.jsonl")
    numeric = [(p, n) for p in problems if (n := _plain_int(p.reference_answer)) is not None]
    assert len(numeric) > 200
    verdicts = grade_many([(p.expert_solution or "", str(n + 1)) for p, n in numeric])
    assert sum(verdicts) == 0


def test_math500_perturbed_expressions_grade_false(benchmarks) -> None:
    # Non-numeric answers with a digit: bump the first digit; a different expression results.
    problems = read_benchmark("math500", benchmarks / "math500.jsonl")
    cases = []
    for p in problems:
        ref = p.reference_answer
        if _plain_int(ref) is None and (m := re.search(r"[1-8]", ref)):
            cases.append(
                (p.expert_solution or "", ref[: m.start()] + str(int(m[0]) + 1) + ref[m.end() :])
            )
    assert len(cases) > 50
    verdicts = grade_many(cases)
    assert sum(verdicts) <= len(cases) * 0.01, [
        c[1] for c, v in zip(cases, verdicts, strict=True) if v
    ]


def test_gsm8k_answers(benchmarks) -> None:
    lines = (benchmarks / "gsm8k.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    numbers = [r["answer"].split("####")[-1].strip().replace(",", "") for r in rows]
    right = grade_many([(r["answer"], n) for r, n in zip(rows, numbers, strict=True)])
    wrong = grade_many(
        [(r["answer"], str(float(n) + 1)) for r, n in zip(rows, numbers, strict=True)]
    )
    assert len(rows) == 1319 and all(right) and not any(wrong)


@pytest.mark.parametrize(
    ("pred", "ref"),
    [
        ("\\frac{\\sqrt{2}}{2}", "\\sqrt{2}/2"),
        ("\\dfrac{1}{2}", "0.5"),
        ("(1,2]", "(1, 2]"),
        ("(3,\\frac{\\pi}{2})", "\\left( 3, \\frac{\\pi}{2} \\right)"),
        ("2x+2", "2(x+1)"),
        ("x=5", "5"),
        ("5\\text{ cm}", "5"),
        ("30^\\circ", "30"),
        ("\\text{(C)}", "C"),
        ("\\{1,2,3\\}", "\\{3,2,1\\}"),
        ("1,000,000", "1000000"),
        ("\\begin{pmatrix}1\\\\2\\end{pmatrix}", "\\begin{pmatrix}1\\\\2\\end{pmatrix}"),
    ],
)
def test_equivalent(pred: str, ref: str) -> None:
    assert grade(f"Thus \\boxed{{{pred}}}.", ref)


@pytest.mark.parametrize(
    ("pred", "ref"),
    [
        ("\\frac{\\sqrt{3}}{2}", "\\sqrt{2}/2"),
        ("(1,2)", "(1,2]"),
        ("(2,1)", "(1,2)"),
        ("2x+1", "2(x+1)"),
        ("x=6", "5"),
        ("B", "C"),
        ("1,000,001", "1000000"),
        ("", "1"),
    ],
)
def test_not_equivalent(pred: str, ref: str) -> None:
    assert not grade(f"Thus \\boxed{{{pred}}}.", ref)


def test_no_answer_and_empty_reference_are_false() -> None:
    assert not grade("I do not know.", "3")
    assert not grade("\\boxed{3}", "  ")
    assert extract_answer("I do not know.") is None
