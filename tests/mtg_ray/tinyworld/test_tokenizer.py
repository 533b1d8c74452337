"""The world's tokenizer survives save + AutoTokenizer (which rebuilds a Qwen2Tokenizer)."""

from pathlib import Path

from transformers import AutoTokenizer

from mtg_ray.models import TinyModelConfig, build_tiny_model, build_tokenizer
from mtg_ray.tinyworld.tokenizer import world_tokenizer

TEXT = "Problem: What is 7 + 6 * 12?\nReference: 12 groups of 6.\nSolution:6*12=72\n\\boxed{79}"


def test_saved_world_tokenizer_loads_with_the_same_ids(tmp_path: Path) -> None:
    folder = build_tiny_model(tmp_path / "m", TinyModelConfig(hidden_size=16, intermediate_size=16))
    world_tokenizer().save_pretrained(folder)
    loaded = AutoTokenizer.from_pretrained(folder)
    ids = build_tokenizer()(TEXT, add_special_tokens=False)["input_ids"]
    assert len(ids) == len(TEXT)
    assert world_tokenizer()(TEXT)["input_ids"] == ids
    assert loaded(TEXT)["input_ids"] == ids
    assert loaded.decode(ids + [loaded.eos_token_id], skip_special_tokens=True) == TEXT
    assert (loaded.eos_token_id, loaded.pad_token_id) == (3, 0)
