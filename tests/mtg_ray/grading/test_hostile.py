"""Hostile model outputs: every class at several sizes gets a verdict within 2 s per call, in
this process and from many processes at once; answers that only look right are wrong."""

import multiprocessing as mp
import random
import time

import pytest

from mtg_ray.data import read_benchmark
from mtg_ray.grading import grade
from mtg_ray.grading.extract import MAX_ANSWER_CHARS, extract_answer

LIMIT_S = 2.0
SIZES = (1_000, 10_000, 100_000)


def garbage(n: int) -> str:
    rng = random.Random(n)
    tokens = ["\\boxed{", "{", "}", "\\frac{", "\\sqrt", "\\text{", " ", "1", "=", "\\", "$", "^"]
    return "".join(rng.choice(tokens) for _ in range(n // 3))


HOSTILE = {
    "spaces in a boxed answer": lambda n: "\\boxed{5" + " " * n + "cm}",
    "spaces before a unit": lambda n: "\\boxed{" + "5" + " " * min(n, MAX_ANSWER_CHARS - 9) + "x}",
    "unclosed boxes": lambda n: "\\boxed{" * (n // 7),
    "deep nesting": lambda n: "\\boxed{" + "{" * (n // 2) + "1" + "}" * (n // 2) + "}",
    "long fraction": lambda n: "\\boxed{\\frac{" + "1" * n + "}{3}}",
    "short long fraction": lambda n: "\\boxed{\\frac" + "1" * min(n, 990) + "x}",
    "long integer": lambda n: "\\boxed{" + "9" * min(n, 990) + "}",
    "many boxes": lambda n: "\\boxed{1}" * (n // 9),
    "answer-is spaces": lambda n: "the answer is" + " " * n + "5",
    "hashes": lambda n: "#" * n,
    "text wrappers": lambda n: "\\boxed{" + "\\text{" * (n // 6) + "}",
    "backslashes": lambda n: "\\" * n + "\\boxed{2}",
    "huge exponent": lambda n: "\\boxed{1e" + "9" * min(n, 990) + "}",
    "equals signs": lambda n: "\\boxed{x" + "=" * min(n, 990) + "5}",
    "sqrt chain": lambda n: "\\boxed{" + "\\sqrt" * min(n // 5, 190) + "2}",
    "random latex": garbage,
}
CASES = [(name, size) for name in HOSTILE for size in SIZES]


def timed_grade(case: tuple[str, int]) -> tuple[str, int, bool, float]:
    name, size = case
    text = HOSTILE[name](size)
    start = time.perf_counter()
    verdict = grade(text, "5")
    return name, size, verdict, time.perf_counter() - start


@pytest.fixture(scope="module", autouse=True)
def warm_sandbox() -> None:
    grade("\\boxed{x^2}", "x**2")  # start this process's sandbox before timing anything


@pytest.mark.parametrize("case", CASES, ids=[f"{n}-{s}" for n, s in CASES])
def test_hostile_output_gets_a_verdict_in_time(case: tuple[str, int]) -> None:
    name, size, verdict, seconds = timed_grade(case)
    assert isinstance(verdict, bool)
    assert seconds < LIMIT_S, f"{name} at {size} chars: {seconds:.2f} s"


def _warm() -> None:
    grade("\\boxed{x^2}", "x**2")


@pytest.mark.slow
def test_hostile_outputs_from_eight_processes_at_once() -> None:
    largest = [(name, SIZES[-1]) for name in HOSTILE]
    with mp.get_context("spawn").Pool(8, initializer=_warm) as pool:
        results = pool.map(timed_grade, largest * 2, chunksize=1)
    slow = [(n, s, round(t, 2)) for n, s, _, t in results if t >= LIMIT_S]
    assert not slow, slow


@pytest.mark.parametrize(
    ("response", "reference", "verdict"),
    [
        ("\\boxed{9007199254740993}", "9007199254740992", False),  # beyond 2**53: exact ints
        ("\\boxed{9007199254740993}", "9007199254740993", True),
        ("\\boxed{1e400}", "2e400", False),  # no overflow to inf
        ("\\boxed{1e400}", "1e400", True),
        ("\\boxed{nan}", "nan", False),
        ("\\boxed{8 (or maybe 9)}", "9", False),  # hedging between values
        ("\\boxed{8 \\text{ or } 9}", "9", False),
        ("\\boxed{x < 1 \\text{ or } x > 2}", "x < 1 or x > 2", True),
        ("\\boxed{5}", "500", True),  # the Qwen2.5-Math harness's percent rule, kept
        ("\\boxed{" + "1" * 2000 + "}", "1" * 2000, False),  # over the answer cap
    ],
)
def test_answers_that_only_look_right(response: str, reference: str, verdict: bool) -> None:
    assert grade(response, reference) is verdict


def test_readers_extract_within_the_limit_too(benchmarks) -> None:
    """Benchmark readers use the same bounded extraction: a hostile solution costs no more."""
    start = time.perf_counter()
    assert extract_answer("\\boxed{" * 20_000) is None
    assert time.perf_counter() - start < LIMIT_S
    assert read_benchmark("math500", benchmarks / "math500.jsonl")
