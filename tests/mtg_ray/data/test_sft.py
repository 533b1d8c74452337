from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mtg_ray.data import DataError, read_sft_parquet


def verl_table(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(rows)


def row(question: str, answer: str, truth: str | None = "2", index: int | None = 0) -> dict:
    extra = {"split": "train", "question": question, "answer": answer}
    if index is not None:
        extra["index"] = index
    return {
        "data_source": "numina",
        "prompt": [{"role": "user", "content": question}],
        "ability": "math",
        "reward_model": {"style": "rule", "ground_truth": truth},
        "extra_info": extra,
    }


def test_reads_verl_rows(tmp_path: Path) -> None:
    path = tmp_path / "train.parquet"
    pq.write_table(
        verl_table(
            [row("1+1?", "so \\boxed{2}"), row("2+2?", "it is \\boxed{4}", truth="", index=9)]
        ),
        path,
    )
    first, second = read_sft_parquet(path)
    assert (first.problem_id, first.question, first.reference_answer) == ("0", "1+1?", "2")
    assert first.expert_solution == "so \\boxed{2}"
    assert (second.problem_id, second.reference_answer) == ("9", "4")  # from \boxed


def test_custom_keys_and_default_ids(tmp_path: Path) -> None:
    path = tmp_path / "custom.parquet"
    table = pa.Table.from_pylist([{"extra_info": {"q": "What?", "sol": "\\boxed{x}"}}])
    pq.write_table(table, path)
    (p,) = read_sft_parquet(path, prompt_key="q", response_key="sol")
    assert p.problem_id == "custom-0" and p.reference_answer == "x"


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (
            [row("1+1?", "\\boxed{2}"), row("   ", "\\boxed{2}")],
            "row 1, field 'extra_info.question': empty",
        ),
        ([row("1+1?", "no box", truth=None)], "row 0, field 'extra_info.answer': no reference"),
    ],
)
def test_bad_rows(tmp_path: Path, rows: list[dict], message: str) -> None:
    path = tmp_path / "bad.parquet"
    pq.write_table(verl_table(rows), path)
    with pytest.raises(DataError, match=message.replace("(", r"\(")):
        read_sft_parquet(path)


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="file not found"):
        read_sft_parquet(tmp_path / "none.parquet")
    no_extra = tmp_path / "no_extra.parquet"
    pq.write_table(pa.table({"prompt": ["x"]}), no_extra)
    with pytest.raises(DataError, match="field 'extra_info': missing column"):
        read_sft_parquet(no_extra)
    no_key = tmp_path / "no_key.parquet"
    pq.write_table(pa.Table.from_pylist([{"extra_info": {"question": "x"}}]), no_key)
    with pytest.raises(DataError, match="field 'extra_info.answer': missing key"):
        read_sft_parquet(no_key)
    wrong = tmp_path / "wrong.parquet"
    pq.write_table(
        pa.Table.from_pylist([{"extra_info": {"question": 3, "answer": "\\boxed{1}"}}]), wrong
    )
    with pytest.raises(DataError, match="row 0, field 'extra_info.question': expected text"):
        read_sft_parquet(wrong)
