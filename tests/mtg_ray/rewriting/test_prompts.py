import pytest

from mtg_ray.models.tiny import build_tokenizer
from mtg_ray.rewriting.prompts import QWEN_BOXED_SYSTEM, end_token_id, get_template


def test_qwen_boxed_plain_prompt() -> None:
    text = get_template("qwen-boxed").format("Compute {x} for x=1.")
    assert QWEN_BOXED_SYSTEM in text  # braces in \boxed{} survive formatting
    assert "Compute {x} for x=1." in text
    assert text.endswith("<|im_start|>assistant\n")


def test_guided_prompt_carries_reference_and_instruction() -> None:
    text = get_template("qwen-boxed").format_guided("What is 2+3?", "2+3=5, so \\boxed{5}")
    assert "What is 2+3?" in text and "2+3=5, so \\boxed{5}" in text
    assert "own words" in text and "Do not copy" in text
    plain = get_template("plain")
    assert plain.format_guided("q", "r") != plain.format("q")


def test_unknown_template() -> None:
    with pytest.raises(KeyError, match="qwen-boxed"):
        get_template("nope")


def test_a_turn_ends_with_the_formats_stop_token_else_the_eos() -> None:
    """A chat format's turn ends with its end-of-turn token, which must be one token of the
    tokenizer (a clear error otherwise); a plain format's with the tokenizer's EOS."""
    tok = build_tokenizer()
    assert end_token_id(get_template("plain"), tok) == tok.eos_token_id
    with pytest.raises(ValueError, match=r"'qwen-boxed' ends a turn with '<\|im_end\|>'"):
        end_token_id(get_template("qwen-boxed"), tok)  # characters: ten tokens
    tok.add_special_tokens({"additional_special_tokens": ["<|im_end|>"]})
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    assert end_token_id(get_template("qwen-boxed"), tok) == im_end != tok.eos_token_id
