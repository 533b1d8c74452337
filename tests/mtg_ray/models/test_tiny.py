from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from mtg_ray.models import TinyModelConfig, build_tiny_model, build_tokenizer


def test_tokenizer_round_trips_math_text() -> None:
    tok = build_tokenizer()
    text = "Solve: 12*(3+4) = 84.\nSo \\boxed{84}!"
    ids = tok(text)["input_ids"]
    assert len(ids) == len(text) and tok.decode(ids) == text
    assert tok.eos_token_id not in ids


def test_saved_model_reloads_identically_and_seed_decides_weights(tmp_path: Path) -> None:
    a = build_tiny_model(tmp_path / "a", TinyModelConfig(), seed=3)
    b = build_tiny_model(tmp_path / "b", TinyModelConfig(), seed=3)
    c = build_tiny_model(tmp_path / "c", TinyModelConfig(), seed=4)
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()
    assert (a / "model.safetensors").read_bytes() != (c / "model.safetensors").read_bytes()
    model = AutoModelForCausalLM.from_pretrained(a)
    tok = AutoTokenizer.from_pretrained(a)
    ids = torch.tensor([tok("1+1=")["input_ids"]])
    assert model(ids).logits.shape == (1, 4, len(tok))
