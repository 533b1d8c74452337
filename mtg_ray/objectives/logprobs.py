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
