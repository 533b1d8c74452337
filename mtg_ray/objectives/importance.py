"""Importance weights pi_theta / pi_behaviour for off-policy SFT, as pure tensor code.

All outputs are detached: the weights scale the gradient of -log pi_theta, they are not trained.
"""

import torch
from torch import Tensor

from mtg_ray.objectives.config import ObjectiveConfig


def masked_mean(x: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Mean of x over positions where mask is true; 0 where nothing is masked in."""
    m = mask.to(x.dtype)
    zero = torch.zeros((), dtype=x.dtype, device=x.device)
    total = torch.where(mask.bool(), x, zero)
    if dim is None:
        return total.sum() / m.sum().clamp(min=1.0)
    return total.sum(dim) / m.sum(dim).clamp(min=1.0)


def token_log_ratio(
    logprobs: Tensor, behaviour_logprobs: Tensor, mask: Tensor, bound: float = 20.0
) -> Tensor:
    """(B,T) clamped log pi_theta - log pi_beta, detached; 0 outside the mask."""
    diff = (logprobs.detach() - behaviour_logprobs).clamp(-bound, bound)
    return torch.where(mask.bool(), diff, torch.zeros_like(diff))


def sequence_log_ratio(
    logprobs: Tensor, behaviour_logprobs: Tensor, mask: Tensor, bound: float = 20.0
) -> Tensor:
    """(B,) mean over response tokens of the log-ratio: log of the geometric-mean ratio."""
    return masked_mean(token_log_ratio(logprobs, behaviour_logprobs, mask, bound), mask, dim=1)


def importance_weights(
    logprobs: Tensor,
    behaviour_logprobs: Tensor,
    mask: Tensor,
    has_behaviour: Tensor,
    cfg: ObjectiveConfig,
) -> tuple[Tensor, Tensor, Tensor]:
    """Per-token weights for records with behaviour log-probs.

    Returns (weights, log_ratio, clipped), each (B,T) and detached. Rows without behaviour
    (expert records) get weight 1 and log-ratio 0 here; the objective decides their weight.
    """
    mask = mask.bool()
    rows = has_behaviour.bool().unsqueeze(1) & mask
    log_ratio = token_log_ratio(logprobs, behaviour_logprobs, rows, cfg.log_ratio_bound)
    if cfg.is_level == "sequence":
        seq = masked_mean(log_ratio, rows, dim=1)
        raw = torch.exp(seq).unsqueeze(1).expand_as(log_ratio)
    else:
        raw = torch.exp(log_ratio)
    weights = raw.clamp(cfg.is_clip_low, cfg.is_clip)
    clipped = rows & (weights != raw)
    if cfg.self_normalize:
        weights = weights / masked_mean(weights, rows).clamp(min=1e-8)
    weights = torch.where(rows, weights, torch.ones_like(weights))
    return weights.detach(), log_ratio, clipped
