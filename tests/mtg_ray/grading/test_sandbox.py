"""The hard timeout: no input may hang or crash the caller."""

import multiprocessing
import threading
import time

import pytest

from mtg_ray.grading import grade, grade_many

HOSTILE = [
    ("\\boxed{2^{2^{2^{100}}}}", "1"),
    ("\\boxed{9^{9^{9^{9}}}}", "0"),
    ("\\boxed{\\frac{1}{0}}", "1"),
    ("\\boxed{" + "{" * 10000 + "1" + "}" * 10000 + "}", "1"),
    ("\\boxed{100000!}", "1"),
    (bytes(range(256)).decode("latin-1") * 4000, "1"),
]


@pytest.fixture(scope="module", autouse=True)
def warm_worker() -> None:
    assert grade("\\boxed{\\sqrt{2}/2}", "\\frac{\\sqrt2}{2}")


@pytest.mark.parametrize(("response", "reference"), HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_input_is_false_and_bounded_in_time(response: str, reference: str) -> None:
    """The sandbox's 1 s timeout ends what would run for ever; the bound is loose (a loaded
    machine is slow), it only tells a working timeout from none."""
    start = time.monotonic()
    assert grade(response, reference) is False
    assert time.monotonic() - start < 30.0


def test_recovers_after_a_timeout() -> None:
    assert not grade("\\boxed{2^{2^{2^{100}}}}", "1")
    assert grade("\\boxed{\\frac{\\sqrt{2}}{2}}", "\\sqrt{2}/2")


def test_a_hung_pair_in_a_batch_costs_only_itself() -> None:
    pairs = [
        ("\\boxed{2(x+1)}", "2x+2"),
        ("\\boxed{9^{9^{9^{9}}}}", "0"),
        ("\\boxed{\\sqrt{8}}", "2\\sqrt{2}"),
        ("\\boxed{x^2}", "x^3"),
    ]
    assert grade_many(pairs) == [True, False, True, False]


def _grade_pair(pair: tuple[str, str]) -> bool:
    return grade(*pair)


SYMBOLIC = [("\\boxed{\\sqrt{8}}", "2\\sqrt{2}"), ("\\boxed{x^2}", "x^3")] * 3


def test_many_threads_at_once() -> None:
    results: list[bool] = [False] * len(SYMBOLIC)

    def run(i: int) -> None:
        results[i] = _grade_pair(SYMBOLIC[i])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(SYMBOLIC))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [True, False] * 3


def test_many_processes_at_once() -> None:
    # grade itself is the pool target: spawned children import it from the installed package.
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        assert pool.starmap(grade, SYMBOLIC, chunksize=1) == [True, False] * 3
