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


def raw_weights(
    logprobs: Tensor,
    behaviour_logprobs: Tensor,
    mask: Tensor,
    has_behaviour: Tensor,
    cfg: ObjectiveConfig,
) -> tuple[Tensor, Tensor, Tensor]:
    """Untruncated weights exp(log_ratio) per token (the sequence ratio repeated over the
    response at `is_level=sequence`), the token log-ratios, and the rows they apply to: each
    (B,T), detached."""
    mask = mask.bool()
    rows = has_behaviour.bool().unsqueeze(1) & mask
    log_ratio = token_log_ratio(logprobs, behaviour_logprobs, rows, cfg.log_ratio_bound)
    if cfg.is_level == "sequence":
        seq = masked_mean(log_ratio, rows, dim=1)
        raw = torch.exp(seq).unsqueeze(1).expand_as(log_ratio)
    else:
        raw = torch.exp(log_ratio)
    return raw, log_ratio, rows


def normalizer_terms(
    logprobs: Tensor,
    behaviour_logprobs: Tensor,
    mask: Tensor,
    has_behaviour: Tensor,
    cfg: ObjectiveConfig,
) -> tuple[float, int]:
    """(sum of untruncated weights, number of weighted tokens) of one micro-batch: summed over
    every micro-batch of every rank, their ratio is the self-normalisation constant of the
    optimizer batch."""
    raw, _, rows = raw_weights(logprobs, behaviour_logprobs, mask, has_behaviour, cfg)
    return _sum_and_count(raw, rows)


def _sum_and_count(raw: Tensor, rows: Tensor) -> tuple[float, int]:
    return float(torch.where(rows, raw, torch.zeros_like(raw)).sum()), int(rows.sum())


def importance_weights(
    logprobs: Tensor,
    behaviour_logprobs: Tensor,
    mask: Tensor,
    has_behaviour: Tensor,
    cfg: ObjectiveConfig,
    normalizer: float | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Per-token weights for records with behaviour log-probs.

    With `cfg.self_normalize` the untruncated weights are first divided by their mean over the
    optimizer batch (`normalizer`, from `normalizer_terms` summed over the batch; None: this
    batch is the whole optimizer batch), then truncated to [is_clip_low, is_clip]: normalising
    before truncation keeps every weight within the cap.

    Returns (weights, log_ratio, clipped), each (B,T) and detached. Rows without behaviour
    (expert records) get weight 1 and log-ratio 0 here; the objective decides their weight.
    """
    raw, log_ratio, rows = raw_weights(logprobs, behaviour_logprobs, mask, has_behaviour, cfg)
    if cfg.self_normalize:
        if normalizer is None:
            total, count = _sum_and_count(raw, rows)
            normalizer = total / count if count else 1.0
        if normalizer > 0:  # raw weights are >= exp(-log_ratio_bound) > 0 where they apply
            raw = raw / normalizer
    weights = raw.clamp(cfg.is_clip_low, cfg.is_clip)
    clipped = rows & (weights != raw)
    weights = torch.where(rows, weights, torch.ones_like(weights))
    return weights.detach(), log_ratio, clipped
