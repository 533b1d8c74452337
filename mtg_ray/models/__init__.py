"""Tiny models the project builds itself: a locally defined tokenizer and a small Qwen2."""

from mtg_ray.models.tiny import BENCH_MODEL, TinyModelConfig, build_tiny_model, build_tokenizer

__all__ = ["BENCH_MODEL", "TinyModelConfig", "build_tiny_model", "build_tokenizer"]
