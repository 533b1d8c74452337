"""Token log-probabilities from logits."""

import torch
from torch import Tensor

IGNORE_INDEX = -100


def token_logprobs(logits: Tensor, labels: Tensor, chunk_size: int = 8) -> Tensor:
    """log pi(labels[b, t]) under logits[b, t]; shapes (B,T,V),(B,T) -> (B,T), at least float32.

    Convention: the caller has already shifted, so logits[:, t] predicts labels[:, t]. Positions
    whose label is IGNORE_INDEX get 0. Works `chunk_size` rows at a time so only one chunk's
    float32 (rows,T,V) log-normaliser is alive at once, whatever the logits dtype.
    """
    dtype = torch.promote_types(logits.dtype, torch.float32)
    valid = labels != IGNORE_INDEX
    safe = torch.where(valid, labels, torch.zeros_like(labels))
    out = []
    for start in range(0, logits.shape[0], chunk_size):
        chunk = logits[start : start + chunk_size].to(dtype)
        picked = chunk.gather(-1, safe[start : start + chunk_size].unsqueeze(-1)).squeeze(-1)
        out.append(picked - torch.logsumexp(chunk, dim=-1))
    logp = torch.cat(out, dim=0) if out else logits.new_zeros(labels.shape, dtype=dtype)
    return torch.where(valid, logp, torch.zeros_like(logp))


def _chunk_logprobs(head: torch.nn.Module, hidden: Tensor, labels: Tensor) -> Tensor:
    logits = head(hidden).to(torch.promote_types(hidden.dtype, torch.float32))
    picked = logits.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    return picked - torch.logsumexp(logits, dim=-1)


def head_logprobs(
    hidden: Tensor, head: torch.nn.Module, labels: Tensor, chunk: int, min_chunks: int = 0
) -> Tensor:
    """token_logprobs(head(hidden), labels) without the whole (B,T,V) logits: `chunk` positions
    at a time, and under autograd each chunk's logits are recomputed in backward (activation
    checkpointing) rather than kept, so at most one chunk's float32 logits exist at once.

    `head` (the language-model head; hidden (B,T,H), labels (B,T)) runs as a module on every
    chunk, in the recomputation too, never as a bare matmul with its weight: under DeepSpeed
    ZeRO-3 a weight is gathered only while its module runs (the engine's module hooks), and is
    an empty partition otherwise. Each run is then a collective, so every rank must run it
    equally often: `min_chunks` pads the chunks with empty ones up to the ranks' largest count."""
    from torch.utils.checkpoint import checkpoint

    b, t, h = hidden.shape
    flat, flat_labels = hidden.reshape(b * t, h), labels.reshape(b * t)
    valid = flat_labels != IGNORE_INDEX
    safe = torch.where(valid, flat_labels, torch.zeros_like(flat_labels))
    out = []
    for i in range(max(-(-b * t // chunk), min_chunks)):
        start = i * chunk
        args = (head, flat[start : start + chunk], safe[start : start + chunk])
        if torch.is_grad_enabled():
            out.append(checkpoint(_chunk_logprobs, *args, use_reentrant=False))
        else:
            out.append(_chunk_logprobs(*args))
    dtype = torch.promote_types(hidden.dtype, torch.float32)
    logp = torch.cat(out) if out else hidden.new_zeros(b * t, dtype=dtype)
    return torch.where(valid, logp, torch.zeros_like(logp)).view(b, t)
