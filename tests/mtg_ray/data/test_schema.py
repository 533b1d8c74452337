import types
import typing
from dataclasses import fields

import pyarrow as pa
import pytest

from mtg_ray.data import RECORD_SCHEMA, DataError, Record, records_to_table, write_records

# Python annotation (without None) -> the arrow type family its column must have.
FAMILIES = {
    str: pa.types.is_string,
    bool: pa.types.is_boolean,
    int: pa.types.is_integer,
    float: pa.types.is_floating,
    list[int]: lambda t: pa.types.is_list(t) and pa.types.is_integer(t.value_type),
    list[float]: lambda t: pa.types.is_list(t) and pa.types.is_floating(t.value_type),
}


def test_schema_mirrors_dataclass() -> None:
    hints = typing.get_type_hints(Record)
    assert [f.name for f in fields(Record)] == RECORD_SCHEMA.names
    for field in RECORD_SCHEMA:
        hint = hints[field.name]
        args = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
        optional = type(None) in args
        (base,) = [a for a in args if a is not type(None)]
        assert optional == field.nullable, field.name
        assert FAMILIES[base](field.type), (field.name, field.type)


def test_fixed_column_types() -> None:
    expected = {
        "prompt_token_ids": pa.list_(pa.int32()),
        "response_token_ids": pa.list_(pa.int32()),
        "behaviour_logprobs": pa.list_(pa.float32()),
        "policy_version": pa.int64(),
        "temperature": pa.float32(),
        "top_p": pa.float32(),
        "max_tokens": pa.int32(),
        "seed": pa.int64(),
        "correct": pa.bool_(),
    }
    for name, typ in expected.items():
        assert RECORD_SCHEMA.field(name).type == typ


def test_floats_are_float32_and_sequences_lists(make_record) -> None:
    rec = make_record(prompt_token_ids=(1, 2), behaviour_logprobs=(-0.1, -0.2))
    assert rec.prompt_token_ids == [1, 2]
    assert rec.behaviour_logprobs == pa.array([-0.1, -0.2], pa.float32()).to_pylist()
    assert rec.temperature == pa.scalar(0.7, pa.float32()).as_py()
    table = records_to_table([rec])
    assert table.column("temperature").to_pylist() == [rec.temperature]


@pytest.mark.parametrize(
    ("base", "overrides", "field", "problem"),
    [
        ("self", {"source": "oracle"}, "source", "must be one of"),
        ("self", {"behaviour_prompt": "Problem: x"}, "behaviour_prompt", "only a teacher"),
        ("guided", {"behaviour_logprobs": [-0.1]}, "behaviour_logprobs", "1 log-probs for 2"),
        ("self", {"behaviour_logprobs": [-0.1, 0.5]}, "behaviour_logprobs", "token 1"),
        ("self", {"behaviour_logprobs": [float("nan"), -1.0]}, "behaviour_logprobs", "token 0"),
        ("self", {"behaviour_logprobs": [-1.0, float("-inf")]}, "behaviour_logprobs", "token 1"),
        ("self", {"behaviour_logprobs": None}, "behaviour_logprobs", "missing"),
        ("expert", {"behaviour_logprobs": [-1.0] * 3}, "behaviour_logprobs", "must be null"),
        ("self", {"standin_logprobs": [-1.0] * 2}, "standin_logprobs", "only an expert"),
        ("expert", {"standin_logprobs": [-1.0] * 2}, "standin_logprobs", "2 log-probs for 3"),
        ("expert", {"standin_logprobs": [-1.0, 0.1, -1.0]}, "standin_logprobs", "token 1"),
        ("expert", {"policy_version": 2}, "policy_version", "must be -1"),
        ("expert", {"seed": 7}, "seed", "must be null"),
        ("expert", {"temperature": 1.0}, "temperature", "must be null"),
        ("self", {"policy_version": -1}, "policy_version", ">= 0"),
        ("self", {"temperature": None}, "temperature", "missing"),
        ("self", {"temperature": -1.0}, "temperature", ">= 0"),
        ("self", {"top_p": 0.0}, "top_p", "(0, 1]"),
        ("self", {"max_tokens": 0}, "max_tokens", ">= 1"),
        ("self", {"response_token_ids": [], "behaviour_logprobs": []}, "response_token_ids", ""),
        ("self", {"prompt_token_ids": [1, -2]}, "prompt_token_ids", "negative"),
        ("self", {"prompt": "  \n"}, "prompt", "empty text"),
        ("self", {"reference_answer": ""}, "reference_answer", "empty text"),
        # wrong Python types are caught before arrow sees them
        ("self", {"source": 3}, "source", "expected string"),
        ("self", {"correct": "yes"}, "correct", "expected bool"),
        ("self", {"policy_version": 1.5}, "policy_version", "expected an integer"),
        ("self", {"max_tokens": 2**40}, "max_tokens", "does not fit int32"),
        ("self", {"prompt_token_ids": [1, "2"]}, "prompt_token_ids", "item 1"),
        ("self", {"behaviour_logprobs": ["a", "b"]}, "behaviour_logprobs", "item 0"),
        ("self", {"response": None}, "response", "null value"),
    ],
)
def test_invalid_record_names_row_and_field(
    tmp_path, make_record, base: str, overrides: dict, field: str, problem: str
) -> None:
    path = tmp_path / "bad.parquet"
    with pytest.raises(DataError) as err:
        write_records(path, [make_record(), make_record(base, **overrides)])
    assert (err.value.row, err.value.field) == (1, field)
    assert str(err.value).startswith(f"{path}: row 1, field '{field}': ")
    assert problem in err.value.problem
    assert not path.exists()


def test_valid_variants_pass(make_record) -> None:
    records = [
        make_record("self"),
        make_record("guided", seed=None, temperature=0.0),
        make_record("expert"),
        make_record("expert", standin_logprobs=[-0.5, -1.0, -2.0]),
    ]
    assert records_to_table(records).num_rows == 4
