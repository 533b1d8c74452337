"""Tied output heads in a vLLM worker (lm_head sharing embed_tokens' weight, as in
Qwen2.5-Math-1.5B), kept right across weight reloads. Runs in each worker, through
`LLM.collective_rpc`.

vLLM (0.32) reloads weights layer by layer: the checkpoint loader skips the head when weights
are tied and fills the shared weight through the embedding, so the head loads nothing; vLLM then
puts the head's old tensors back, which are the embedding's very storage and already hold the
new values, and logs "ParallelLMHead: Failed to load weights" (on every sync and `load_folder`).
Two things follow, each handled here:

- What the head's quant method derived from its weight at load time is never redone. On CPU
  that is the prepacked GEMM (a oneDNN handle or a packed copy) the logits are computed with, so
  after any reload the engine kept scoring with the old head: 0.04 nats/token off the learner on
  the tied tiny model. `refresh_tied_heads` redoes it after each reload (on GPU an unquantized
  head derives nothing, and it does nothing). Only unquantized heads are tied here: redoing a
  quantized head's processing on weights already processed would not be safe.
- The warning is not a failure for a tied head, so `watch_tied_heads` drops exactly that line
  for the head classes it found tied (and no other line: RotaryEmbedding's, for its computed
  cos/sin cache, stays as vLLM logs it for every model).
"""

import logging
from typing import Any

import torch

# The vLLM logger that reports a layer whose reload loaded nothing, and its line.
RELOAD_LOGGER = "vllm.model_executor.model_loader.reload.layerwise"
FAILED_LOAD = "{}: Failed to load weights"


def tied_heads(model: torch.nn.Module) -> dict[str, torch.nn.Module]:
    """Name -> module of each unquantized module whose `weight` is the very parameter of a
    module met earlier in `model`'s module order (the embedding it is tied to)."""
    from vllm.model_executor.layers.vocab_parallel_embedding import UnquantizedEmbeddingMethod

    owner: dict[int, str] = {}
    heads = {}
    for name, module in model.named_modules(remove_duplicate=False):
        weight = module._parameters.get("weight")
        if weight is None:
            continue
        if owner.setdefault(id(weight), name) != name and isinstance(
            getattr(module, "quant_method", None), UnquantizedEmbeddingMethod
        ):
            heads[name] = module
    return heads


class TiedHeadFilter(logging.Filter):
    """Drops the reload's "Failed to load weights" line of the given (tied head) classes."""

    def __init__(self, classes: set[str]) -> None:
        super().__init__()
        self.lines = {FAILED_LOAD.format(c) for c in classes}

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() not in self.lines


def watch_tied_heads(worker: Any) -> list[str]:
    """At engine start: find this worker's tied heads and drop their false failed-load line.
    Returns their names."""
    heads = tied_heads(worker.model_runner.get_model())
    logger = logging.getLogger(RELOAD_LOGGER)
    if heads and not any(isinstance(f, TiedHeadFilter) for f in logger.filters):
        logger.addFilter(TiedHeadFilter({type(m).__name__ for m in heads.values()}))
    return sorted(heads)


def refresh_tied_heads(worker: Any) -> list[str]:
    """After a reload: redo what each tied head's quant method derives from its weight (now
    the new one). Returns the heads' names."""
    heads = tied_heads(worker.model_runner.get_model())
    with torch.no_grad():
        for module in heads.values():
            module.quant_method.process_weights_after_loading(module)
    return sorted(heads)
