"""Build tiny HF-format models locally (nothing can be downloaded from a hub).

The tokenizer is character level over printable ASCII plus newline, defined in code, so any
math text round-trips exactly. The model is a few-layer Qwen2 (an architecture vLLM supports),
randomly initialised from a seed and saved with `save_pretrained` so transformers and vLLM load
the same folder.
"""

import string
from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

SPECIAL_TOKENS = ("<pad>", "<unk>", "<bos>", "<eos>")
CHARACTERS = "\n" + "".join(c for c in string.printable if c not in "\t\n\r\x0b\x0c")


@dataclass(frozen=True)
class TinyModelConfig:
    """Shape of the tiny Qwen2 (the initialisation seed is `build_tiny_model`'s).
    head_dim = hidden_size / num_attention_heads."""

    hidden_size: int = 128
    intermediate_size: int = 256
    num_hidden_layers: int = 2
    num_attention_heads: int = 2
    num_key_value_heads: int = 1
    max_position_embeddings: int = 1024


# The size the benchmarks use: big enough (12.2M params) that compute, not overhead, dominates a
# step on 2 cores, small enough that a benchmark finishes in minutes.
BENCH_MODEL = TinyModelConfig(
    hidden_size=512,
    intermediate_size=1536,
    num_hidden_layers=4,
    num_attention_heads=8,
    num_key_value_heads=2,
)


def build_tokenizer() -> PreTrainedTokenizerFast:
    """A character-level tokenizer: one token per character, specials first."""
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for ch in CHARACTERS:
        vocab[ch] = len(vocab)
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        unk_token="<unk>",
        bos_token="<bos>",
        eos_token="<eos>",
    )


def build_tiny_model(
    out_dir: str | Path, cfg: TinyModelConfig = TinyModelConfig(), seed: int = 0,
    tied: bool = False, tokenizer: PreTrainedTokenizerFast | None = None,
) -> Path:  # fmt: skip
    """Save a tiny Qwen2 of shape `cfg`, randomly initialised from `seed`, and its tokenizer
    (default: `build_tokenizer()`'s characters) to `out_dir`; `tied`: lm_head shares
    embed_tokens' weight (as in Qwen2.5-Math-1.5B; the tests of the weight sync use it, the
    worlds do not)."""
    tokenizer = tokenizer or build_tokenizer()
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_hidden_layers,
        num_attention_heads=cfg.num_attention_heads,
        num_key_value_heads=cfg.num_key_value_heads,
        max_position_embeddings=cfg.max_position_embeddings,
        tie_word_embeddings=tied,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        torch_dtype="float32",
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    out = Path(out_dir)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out
