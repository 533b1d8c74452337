import pytest

from mtg_ray.rewriting.prompts import QWEN_BOXED_SYSTEM, get_template


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
