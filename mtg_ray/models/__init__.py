"""Tiny models the project builds itself: a locally defined tokenizer and a small Qwen2."""

from mtg_ray.models.tiny import TinyModelConfig, build_tiny_model, build_tokenizer

__all__ = ["TinyModelConfig", "build_tiny_model", "build_tokenizer"]
