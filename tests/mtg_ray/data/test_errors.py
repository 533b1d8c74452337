import pickle

from mtg_ray.data import DataError


def test_message_names_file_row_and_field() -> None:
    err = DataError("/d/x.jsonl", "empty text", row=3, field="extra_info.question")
    assert str(err) == "/d/x.jsonl: row 3, field 'extra_info.question': empty text"
    assert (err.path, err.row, err.field, err.problem) == (
        "/d/x.jsonl",
        3,
        "extra_info.question",
        "empty text",
    )
    assert isinstance(err, ValueError)


def test_message_leaves_out_what_is_unknown() -> None:
    assert str(DataError("a.parquet", "missing column", field="source")) == (
        "a.parquet: field 'source': missing column"
    )
    assert str(DataError("a.jsonl", "malformed JSON", row=0)) == "a.jsonl: row 0: malformed JSON"
    assert str(DataError("a.jsonl", "file not found")) == "a.jsonl: file not found"


def test_survives_pickling() -> None:
    err = pickle.loads(pickle.dumps(DataError("f", "bad", row=1, field="x")))
    assert isinstance(err, DataError) and (err.row, err.field, str(err)) == (
        1,
        "x",
        "f: row 1, field 'x': bad",
    )
