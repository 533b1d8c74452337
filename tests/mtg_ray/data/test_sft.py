from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mtg_ray.data import DataError, read_sft_parquet


def verl_row(
    question: str | None, answer: str, truth: str | None = "2", index: int | None = 0
) -> dict:
    """One row as verl's SFT preprocessing writes it: chat prompt, reward struct, extra_info."""
    extra = {"split": "train", "index": index, "question": question, "answer": answer}
    return {
        "data_source": "numina_cot",
        "prompt": [{"role": "user", "content": question}],
        "ability": "math",
        "reward_model": {"style": "rule", "ground_truth": truth},
        "extra_info": extra,
    }


def write(tmp_path: Path, rows: list[dict], name: str = "train.parquet") -> Path:
    path = tmp_path / name
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def test_reads_verl_rows(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        [
            verl_row("1+1?", "so \\boxed{2}"),
            verl_row("2+2?", "it is \\boxed{\\frac{8}{2}}", truth="", index=9),
            verl_row("3+3?", "\\boxed{6}", truth="  ", index=None),
        ],
    )
    schema = pq.read_schema(path)
    assert pa.types.is_struct(schema.field("extra_info").type)  # nested, as verl writes it
    before = (path.read_bytes(), path.stat().st_mtime_ns)
    first, second, third = read_sft_parquet(path)
    assert (first.problem_id, first.question, first.reference_answer) == ("0", "1+1?", "2")
    assert first.expert_solution == "so \\boxed{2}" and first.dataset == "train"
    assert (second.problem_id, second.reference_answer) == ("9", "\\frac{8}{2}")  # from \boxed
    assert (third.problem_id, third.reference_answer) == ("train-2", "6")
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before  # readers never modify input


def test_ground_truth_wins_over_boxed(tmp_path: Path) -> None:
    path = write(tmp_path, [verl_row("q", "\\boxed{4}", truth="4.0")])
    assert read_sft_parquet(path)[0].reference_answer == "4.0"


def test_custom_keys_and_default_ids(tmp_path: Path) -> None:
    path = write(tmp_path, [{"extra_info": {"q": "What?", "sol": "\\boxed{x}"}}], "custom.parquet")
    (p,) = read_sft_parquet(path, prompt_key="q", response_key="sol")
    assert (p.problem_id, p.question, p.reference_answer) == ("custom-0", "What?", "x")
    with pytest.raises(DataError, match="field 'extra_info.question': missing key"):
        read_sft_parquet(path)


@pytest.mark.parametrize(
    ("rows", "row", "field", "problem"),
    [
        ([verl_row("1+1?", "\\boxed{2}"), verl_row(None, "\\boxed{2}")], 1, "question", "missing"),
        ([verl_row("1+1?", "\\boxed{2}"), verl_row("  ", "\\boxed{2}")], 1, "question", "empty"),
        ([verl_row("1+1?", "\n")], 0, "answer", "empty text"),
        ([verl_row("q", "no box here", truth=None)], 0, "answer", "no reference answer"),
        ([verl_row("q", "x"), verl_row("q", "x", truth="")], 1, "answer", "no reference answer"),
    ],
)
def test_bad_rows(tmp_path: Path, rows: list[dict], row: int, field: str, problem: str) -> None:
    path = write(tmp_path, rows)
    with pytest.raises(DataError) as err:
        read_sft_parquet(path)
    assert (err.value.row, err.value.field) == (row, f"extra_info.{field}")
    assert str(err.value).startswith(f"{path}: row {row}, field 'extra_info.{field}': {problem}")


def test_wrong_types(tmp_path: Path) -> None:
    wrong = write(tmp_path, [{"extra_info": {"question": 3, "answer": "\\boxed{1}"}}])
    with pytest.raises(DataError, match="row 0, field 'extra_info.question': expected text"):
        read_sft_parquet(wrong)
    flat = write(tmp_path, [{"extra_info": "not a struct"}], "flat.parquet")
    with pytest.raises(DataError, match="field 'extra_info': expected a struct"):
        read_sft_parquet(flat)
    reward = write(
        tmp_path,
        [{"reward_model": "2", "extra_info": {"question": "q", "answer": "\\boxed{2}"}}],
        "reward.parquet",
    )
    with pytest.raises(DataError, match="field 'reward_model': expected a struct"):
        read_sft_parquet(reward)
    truth = write(
        tmp_path,
        [
            {
                "reward_model": {"ground_truth": ["2"]},
                "extra_info": {"question": "q", "answer": "\\boxed{2}"},
            }
        ],
        "truth.parquet",
    )
    with pytest.raises(DataError, match="row 0, field 'reward_model.ground_truth': expected"):
        read_sft_parquet(truth)


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="none.parquet: file not found"):
        read_sft_parquet(tmp_path / "none.parquet")
    no_extra = write(tmp_path, [{"prompt": "x"}], "no_extra.parquet")
    with pytest.raises(DataError, match="field 'extra_info': missing column"):
        read_sft_parquet(no_extra)
    junk = tmp_path / "junk.parquet"
    junk.write_text("hello")
    with pytest.raises(DataError, match="not a readable parquet"):
        read_sft_parquet(junk)


def test_numinamath_becomes_the_presets_parquet_first_rows_boxed_only(tmp_path: Path) -> None:
    from mtg_ray.data.sft import sft_from_numinamath

    def numina(rows: list[tuple[str, str]], name: str) -> Path:
        questions, solutions = [q for q, _ in rows], [s for _, s in rows]
        table = pa.table({"problem": questions, "solution": solutions})
        pq.write_table(table, tmp_path / name)
        return tmp_path / name

    first = numina([("1+1?", "So $\\boxed{2}$."), ("Prove it.", "Done, no box.")], "a.parquet")
    second = numina([("2+2?", "\\boxed{3} then \\boxed{4}"), ("3+3?", "\\boxed{6}")], "b.parquet")
    table, dropped = sft_from_numinamath([first, second], rows=3)
    assert dropped == 1 and table.num_rows == 2  # the fourth row is past `rows`
    out = tmp_path / "numinamath.parquet"
    pq.write_table(table, out)
    problems = read_sft_parquet(out)
    assert [(p.question, p.reference_answer, p.problem_id) for p in problems] == [
        ("1+1?", "2", "0"), ("2+2?", "4", "2"),
    ]  # fmt: skip
    assert problems[1].expert_solution == "\\boxed{3} then \\boxed{4}"
    with pytest.raises(DataError, match="solution"):
        pq.write_table(pa.table({"problem": ["x"]}), tmp_path / "bad.parquet")
        sft_from_numinamath([tmp_path / "bad.parquet"])
