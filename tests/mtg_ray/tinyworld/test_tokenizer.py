"""The world's tokenizer: words whole, numbers as digits, and the same ids after save +
AutoTokenizer (which rebuilds a Qwen2Tokenizer from the vocabulary and merges)."""

import random
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from mtg_ray.models import TinyModelConfig, build_tiny_model
from mtg_ray.rewriting.prompts import get_template
from mtg_ray.tinyworld import small
from mtg_ray.tinyworld.styles import expert_solution, own_solution
from mtg_ray.tinyworld.task import sample_items
from mtg_ray.tinyworld.tokenizer import world_tokenizer
from mtg_ray.tinyworld.world import TEMPLATE, tokenizer_texts


@pytest.fixture(scope="module")
def tokenizer():
    return world_tokenizer(tokenizer_texts(small(), set()), small().vocab_size)


def texts() -> list[str]:
    """Every kind of text a record holds, on problems the tokenizer was not trained on."""
    rng, template = random.Random("unseen"), get_template(TEMPLATE)
    out = []
    for item in sample_items(rng, 40, {1: 1.0, 2: 1.0, 3: 1.0, 4: 1.0}):
        expert = expert_solution(item, rng)
        out += [template.format(item.question), template.format_guided(item.question, expert)]
        out += [expert, own_solution(item), own_solution(item, rng)]
    return out + ["Ünïcode and\ttabs  and  spaces\n\n", "\\boxed{-3.5e10}"]


def test_saved_world_tokenizer_loads_with_the_same_ids_and_decodes_back(
    tokenizer, tmp_path: Path
) -> None:
    folder = build_tiny_model(
        tmp_path / "m", TinyModelConfig(hidden_size=16, intermediate_size=16), tokenizer=tokenizer
    )
    loaded = AutoTokenizer.from_pretrained(folder)
    assert type(loaded).__name__ == "Qwen2Tokenizer"
    for text in texts():
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert loaded(text, add_special_tokens=False)["input_ids"] == ids, text
        with_eos = ids + [loaded.eos_token_id]
        assert loaded.decode(with_eos, skip_special_tokens=True) == text
    assert (loaded.pad_token_id, loaded.eos_token_id) == (0, 3)


def test_words_are_tokens_numbers_are_digits(tokenizer) -> None:
    text = "We need 6 * 12. First, multiply 12 by 6 to get 72, which leaves 7 + 72 - 5."
    pieces = tokenizer.tokenize(text)
    assert {"We", "Ġneed", "ĠFirst", "Ġmultiply", "Ġleaves"} <= set(pieces)
    assert {"1", "2", "7"} <= set(pieces) and "12" not in pieces and "72" not in pieces
    experts = [t for t in texts() if t.startswith(("We ", "So "))]
    chars = sum(map(len, experts))
    tokens = sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in experts)
    assert tokens < 0.6 * chars  # the prose in words, not characters
