"""Randomly initialised Qwen2 models of real checkpoints' shapes, for GPU benchmarks and device
checks (the weights do not matter there, only the work). Saved with the project's tokenizer
(for its pad id): token ids in benchmark records may go beyond it, up to the shape's vocabulary.
"""

from pathlib import Path

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from mtg_ray.models.tiny import build_tokenizer

# Qwen2.5-Math-1.5B: 1.54B parameters, a 152k vocabulary, tied embeddings.
QWEN_1_5B = dict(
    vocab_size=151936, hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
    num_attention_heads=12, num_key_value_heads=2, max_position_embeddings=4096,
    tie_word_embeddings=True,
)  # fmt: skip
# The same architecture small enough for a CPU run of the same scripts (their CPU mode).
SMALL = dict(
    vocab_size=8192, hidden_size=256, intermediate_size=512, num_hidden_layers=2,
    num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
    tie_word_embeddings=True,
)  # fmt: skip


def build_random_model(
    out: str | Path, shape: dict, device: str = "cpu", dtype: str = "bfloat16", seed: int = 0
) -> Path:
    """Save a Qwen2 of `shape` initialised from `seed` on `device` (large shapes initialise much
    faster on a GPU) in `dtype`, with the project's tokenizer."""
    torch.manual_seed(seed)
    config = Qwen2Config(**shape, pad_token_id=0, torch_dtype=dtype)
    with torch.device(device):
        model = Qwen2ForCausalLM(config).to(getattr(torch, dtype))
    model.save_pretrained(out)
    build_tokenizer().save_pretrained(out)
    return Path(out)
