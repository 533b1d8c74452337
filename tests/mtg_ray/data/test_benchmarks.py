import json
from pathlib import Path

import pytest

from mtg_ray.data import BENCHMARKS, DataError, read_benchmark
from mtg_ray.data.benchmarks import strip_dollars

COUNTS = {
    "math500": 500,
    "aime24": 30,
    "amc23": 40,
    "minerva_math": 272,
    "olympiadbench": 675,
    "gsm8k": 1319,
}
WITH_SOLUTIONS = {"math500", "aime24", "minerva_math", "olympiadbench", "gsm8k"}


def test_benchmark_names() -> None:
    assert set(BENCHMARKS) == set(COUNTS)


@pytest.mark.parametrize("name", BENCHMARKS)
def test_every_benchmark_loads(benchmarks: Path, name: str) -> None:
    problems = read_benchmark(benchmarks / f"{name}.jsonl")  # the file's stem names its loader
    assert len(problems) == COUNTS[name]
    assert all(p.question.strip() and p.reference_answer.strip() for p in problems)
    assert all(p.dataset == name for p in problems)
    assert not any(p.reference_answer.startswith("$") for p in problems)
    assert len({p.problem_id for p in problems}) == len(problems)
    has_solution = all(p.expert_solution and p.expert_solution.strip() for p in problems)
    assert has_solution == (name in WITH_SOLUTIONS)


def test_known_values(benchmarks: Path) -> None:
    def answers(name: str, n: int = 2) -> list[str]:
        return [p.reference_answer for p in read_benchmark(name, benchmarks / f"{name}.jsonl")][:n]

    assert answers("amc23") == ["27", "36"]  # stored as 27.0
    assert answers("aime24") == ["204", "113"]
    assert answers("gsm8k") == ["18", "3"]  # after '####'
    assert answers("olympiadbench", 3) == ["2", "\\frac{1}{2 n+2}", "2^{1009}"]  # '$' stripped
    assert answers("minerva_math") == ["1.6", "4.5e33"]  # from \boxed{}
    assert answers("math500") == ["\\left( 3, \\frac{\\pi}{2} \\right)", "p - q"]
    gsm = read_benchmark("gsm8k", benchmarks / "gsm8k.jsonl")
    assert "\\$32,\\!348" in {
        p.reference_answer for p in read_benchmark(benchmarks / "math500.jsonl")
    }
    assert gsm[0].expert_solution and gsm[0].expert_solution.endswith("#### 18")


def test_name_resolves_in_benchmarks_folder(benchmarks: Path, monkeypatch) -> None:
    monkeypatch.setenv("MTG_RAY_BENCHMARKS", str(benchmarks))
    assert len(read_benchmark("aime24")) == 30


def test_answer_normalisation(tmp_path: Path) -> None:
    path = tmp_path / "olympiadbench.jsonl"
    rows = [
        {"question": "q", "final_answer": ["$1$", "$-2$"]},
        {"question": "q", "final_answer": ["$x$"], "solution": ["a", "b"]},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    first, second = read_benchmark(path)
    assert (first.reference_answer, first.expert_solution) == ("1, -2", None)
    assert (second.reference_answer, second.expert_solution) == ("x", "a\n\nb")
    amc = tmp_path / "amc23.jsonl"
    amc.write_text('{"question": "q", "answer": 2.5}\n{"question": "q", "answer": 3}\n')
    assert [p.reference_answer for p in read_benchmark(amc)] == ["2.5", "3"]
    assert strip_dollars(" $\\$5$ ") == "\\$5" and strip_dollars("5\\$") == "5\\$"


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (
            "math500",
            b'{"problem": "ok", "answer": "1"}\n{"problem": "x"\n',
            "row 1: malformed JSON",
        ),
        (
            "math500",
            b'{"problem": "ok", "answer": "1"}\n\n{"problem": "\xff"}\n',
            "row 2: not UTF-8",
        ),
        ("math500", b'{"problem": "ok"}\n', "row 0, field 'answer': missing field"),
        ("math500", b'{"answer": "1"}\n', "row 0, field 'problem': missing field"),
        ("math500", b'{"problem": "  ", "answer": "1"}\n', "row 0, field 'problem': empty text"),
        ("math500", b'{"problem": "q", "answer": "$ $"}\n', "row 0, field 'answer': empty answer"),
        (
            "math500",
            b'{"problem": ["x"], "answer": "1"}\n',
            "row 0, field 'problem': expected text",
        ),
        ("math500", b'{"problem": 5, "answer": "1"}\n', "row 0, field 'problem': expected text"),
        ("math500", b"[1, 2]\n", "row 0: expected a JSON object"),
        ("amc23", b'{"question": "q", "answer": true}\n', "row 0, field 'answer': expected text"),
        ("gsm8k", b'{"question": "q", "answer": "no hashes"}\n', "row 0, field 'answer': no '####"),
        (
            "minerva_math",
            b'{"problem": "q", "solution": "x = 1"}\n',
            "field 'solution': no \\\\boxed",
        ),
        (
            "olympiadbench",
            b'{"question": "q", "final_answer": "2"}\n',
            "row 0, field 'final_answer': expected a non-empty list",
        ),
        (
            "olympiadbench",
            b'{"question": "q", "final_answer": []}\n',
            "row 0, field 'final_answer': expected a non-empty list",
        ),
    ],
)
def test_bad_jsonl(tmp_path: Path, name: str, content: bytes, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message) as err:
        read_benchmark(name, path)
    assert str(err.value).startswith(f"{path}: row ")
    assert path.read_bytes() == content  # readers never modify input


def test_unknown_benchmark_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="unknown benchmark 'mmlu'"):
        read_benchmark("mmlu")
    with pytest.raises(DataError, match="unknown benchmark 'notes'"):
        read_benchmark(tmp_path / "notes.jsonl")
    with pytest.raises(DataError, match="gsm8k.jsonl: file not found"):
        read_benchmark(tmp_path / "gsm8k.jsonl")
    with pytest.raises(DataError, match="cannot open"):
        read_benchmark("gsm8k", tmp_path)  # a folder, not a file
