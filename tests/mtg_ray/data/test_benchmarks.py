from pathlib import Path

import pytest

from mtg_ray.data import BENCHMARKS, DataError, read_benchmark

COUNTS = {
    "math500": 500,
    "aime24": 30,
    "amc23": 40,
    "minerva_math": 272,
    "olympiadbench": 675,
    "gsm8k": 1319,
}


@pytest.mark.parametrize("name", BENCHMARKS)
def test_every_benchmark_loads(benchmarks: Path, name: str) -> None:
    problems = read_benchmark(name, benchmarks / f"{name}.jsonl")
    assert len(problems) == COUNTS[name]
    assert all(p.question.strip() and p.reference_answer.strip() for p in problems)
    assert len({p.problem_id for p in problems}) == len(problems)


def test_known_values(benchmarks: Path) -> None:
    assert read_benchmark("amc23", benchmarks / "amc23.jsonl")[0].reference_answer == "27"
    assert read_benchmark("aime24", benchmarks / "aime24.jsonl")[0].reference_answer == "204"
    assert read_benchmark("gsm8k", benchmarks / "gsm8k.jsonl")[0].reference_answer == "18"
    assert (
        read_benchmark("olympiadbench", benchmarks / "olympiadbench.jsonl")[0].reference_answer
        == "2"
    )
    math500 = read_benchmark("math500", benchmarks / "math500.jsonl")[0]
    assert math500.reference_answer == "\\left( 3, \\frac{\\pi}{2} \\right)"
    assert math500.expert_solution and "\\boxed" in math500.expert_solution


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            b'{"problem": "ok", "answer": "1"}\n{"problem": "x", "answer": "1"\n',
            "row 1: malformed JSON",
        ),
        (
            b'{"problem": "ok", "answer": "1"}\n{"problem": "\xff", "answer": "1"}\n',
            "row 1: not UTF-8",
        ),
        (b'{"problem": "ok"}\n', "row 0, field 'answer': missing field"),
        (b'{"problem": "  ", "answer": "1"}\n', "row 0, field 'problem': empty text"),
        (b'{"problem": ["x"], "answer": "1"}\n', "row 0, field 'problem': expected text"),
        (b"[1, 2]\n", "row 0: expected a JSON object"),
    ],
)
def test_bad_jsonl(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message) as err:
        read_benchmark("math500", path)
    assert str(path) in str(err.value)


def test_unknown_benchmark_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="unknown benchmark 'mmlu'"):
        read_benchmark("mmlu")
    with pytest.raises(DataError, match="file not found"):
        read_benchmark("gsm8k", tmp_path / "gsm8k.jsonl")
