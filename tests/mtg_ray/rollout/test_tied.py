"""Tied heads found in a module tree, refreshed, and their false reload warning dropped (on
plain torch modules carrying vLLM's unquantized embedding method; no engine)."""

import logging
from types import SimpleNamespace

import torch
from vllm.model_executor.layers.vocab_parallel_embedding import UnquantizedEmbeddingMethod

from mtg_ray.rollout.tied import (
    FAILED_LOAD,
    RELOAD_LOGGER,
    TiedHeadFilter,
    refresh_tied_heads,
    tied_heads,
)


class Layer(torch.nn.Module):
    """An embedding or a head: one weight and vLLM's unquantized embedding method."""

    def __init__(self, weight: torch.nn.Parameter) -> None:
        super().__init__()
        self.weight = weight
        self.quant_method = UnquantizedEmbeddingMethod()


class CountingMethod(UnquantizedEmbeddingMethod):
    """The unquantized method, counting its processing calls."""

    calls = 0

    def process_weights_after_loading(self, layer: torch.nn.Module) -> None:
        CountingMethod.calls += 1


def model(tied: bool) -> torch.nn.Module:
    embed = Layer(torch.nn.Parameter(torch.randn(8, 4), requires_grad=False))
    head_weight = embed.weight if tied else torch.nn.Parameter(torch.randn(8, 4))
    net = torch.nn.Module()
    net.model = torch.nn.Module()
    net.model.embed_tokens = embed
    net.lm_head = Layer(head_weight)
    return net


def test_only_a_head_sharing_an_earlier_modules_weight_is_tied() -> None:
    assert list(tied_heads(model(tied=True))) == ["lm_head"]
    assert tied_heads(model(tied=False)) == {}
    quantized = model(tied=True)
    quantized.lm_head.quant_method = object()  # not known safe to process twice
    assert tied_heads(quantized) == {}


def test_a_refresh_processes_the_tied_head_alone() -> None:
    net = model(tied=True)
    net.lm_head.quant_method = CountingMethod()
    net.model.embed_tokens.quant_method = CountingMethod()
    worker = SimpleNamespace(model_runner=SimpleNamespace(get_model=lambda: net))
    CountingMethod.calls = 0
    assert refresh_tied_heads(worker) == ["lm_head"]
    assert CountingMethod.calls == 1


def test_the_filter_drops_the_tied_heads_failed_load_line_and_nothing_else() -> None:
    keep = TiedHeadFilter({"ParallelLMHead"})

    def record(cls: str) -> logging.LogRecord:
        return logging.LogRecord(
            RELOAD_LOGGER, logging.WARNING, "layerwise.py", 266, "%s: Failed to load weights",
            (cls,), None,
        )  # fmt: skip

    assert record("ParallelLMHead").getMessage() == FAILED_LOAD.format("ParallelLMHead")
    assert not keep.filter(record("ParallelLMHead"))
    assert keep.filter(record("RotaryEmbedding")) and keep.filter(record("QKVParallelLinear"))
