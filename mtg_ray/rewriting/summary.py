"""What rewriting did to the data: stage fractions, and how far the data sits from the policy.

Importance weights here are sequence-level (our reading; the objectives' sequence mode uses the
same form): log w = mean_t log pi(y_t | x) - mean_t log pi_beta(y_t), with pi the base policy on
the plain prompt and pi_beta the distribution that generated the response (recorded at
generation for self, guided and teacher records). An expert demonstration's pi_beta is
unknown; we take the demonstrator as deterministic (log pi_beta = 0), so its weight is the
policy's own geometric-mean token probability. Variances are of self-normalised weights
w / mean(w), so sets of different overall likelihood compare on the same scale.

Pooling the sources would mostly measure the expert share (expert rows sit near log w = mean
log-prob, sampled rows near 0), so the summary reports each sampled source on its own (variance,
effective sample size, mean log-prob) and the expert share as its own number.
"""

from collections import Counter
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from mtg_ray.data import SOURCES, Record
from mtg_ray.rewriting.diagnostics import mean_token_logprob, sequence_log_ratios, weight_stats

SAMPLED_SOURCES = tuple(s for s in SOURCES if s != "expert")


def record_log_ratios(records: Sequence[Record], policy_logprobs: Sequence[Sequence[float]]):
    """Per-record log w (see the module docstring); policy_logprobs[i] scores records[i]'s
    response tokens under the base policy."""
    pairs = list(zip(records, policy_logprobs, strict=True))
    for rec, lps in pairs:
        if len(lps) != len(rec.response_token_ids):
            raise ValueError(
                f"record {rec.problem_id!r}: {len(lps)} log-probs for "
                f"{len(rec.response_token_ids)} response tokens"
            )
    behaviour = [rec.behaviour_logprobs or [0.0] * len(lps) for rec, lps in pairs]
    return sequence_log_ratios(policy_logprobs, behaviour)


def normalised_weight_variance(log_ratios: Sequence[float]) -> float:
    """Var(w / mean w) for w = exp(log_ratio), computed stably in log space."""
    lr = np.asarray(log_ratios, dtype=np.float64)
    if lr.size == 0:
        return float("nan")
    w = np.exp(lr - lr.max())
    return float(np.var(w / w.mean()))


def stage_fractions(records: Sequence[Record]) -> dict[str, float]:
    """Share of problems whose kept data came from each source (self, guided, teacher,
    expert)."""
    per_problem = {r.problem_id: r.source for r in records}
    counts = Counter(per_problem.values())
    total = max(1, len(per_problem))
    return {s: counts.get(s, 0) / total for s in SOURCES}


def summarize(
    rewritten: Sequence[Record],
    rewritten_logprobs: Sequence[Sequence[float]],
    expert: Sequence[Record],
    expert_logprobs: Sequence[Sequence[float]],
) -> dict[str, float]:
    """The rewrite summary: keys are the TensorBoard tags under `rewrite/`. Per sampled source
    s (self, guided, teacher): var_s (variance of normalised weights), ess_s (Kish effective
    sample size as a fraction of the count), logprob_s (mean token log-prob under the policy),
    log_ratio_s (mean log w: the policy's mean token log-prob less the behaviour's, the gap a
    teacher's records sit at); expert_share (the expert fallback's share of the
    problems); var_expert / logprob_expert of the raw expert data."""
    fractions = stage_fractions(rewritten)
    log_w = record_log_ratios(rewritten, rewritten_logprobs)
    out = {
        "problems": float(len({r.problem_id for r in rewritten})),
        "records": float(len(rewritten)),
        **{f"{s}_fraction": f for s, f in fractions.items()},
        "expert_share": fractions["expert"],
        "logprob_rewritten": mean_token_logprob(rewritten_logprobs),
        "logprob_expert": mean_token_logprob(expert_logprobs),
        "var_expert": normalised_weight_variance(record_log_ratios(expert, expert_logprobs)),
    }
    for source in SAMPLED_SOURCES:
        rows = [i for i, r in enumerate(rewritten) if r.source == source]
        out[f"var_{source}"] = normalised_weight_variance(log_w[rows])
        out[f"ess_{source}"] = weight_stats(log_w[rows]).ess_fraction
        out[f"logprob_{source}"] = mean_token_logprob([rewritten_logprobs[i] for i in rows])
        out[f"log_ratio_{source}"] = float(np.mean(log_w[rows])) if rows else float("nan")
    return out


def faithful_shares(
    records: Sequence[Record], levels: Mapping[str, str], faithful: Callable[[Record], bool]
) -> dict[str, float]:
    """Share of the kept self, guided and teacher records whose reasoning checks out step by step
    (`faithful`, e.g. the tiny world's `faithful.check_record`), overall and per problem level:
    `faithful_<source>` and `faithful_<source>_level_<L>` (NaN where a level has none). The
    grader checks only final answers; this says how many right answers came from right steps."""
    verdicts = {id(r): faithful(r) for r in records if r.source != "expert"}
    out: dict[str, float] = {}
    all_levels = sorted({levels.get(r.problem_id, "") for r in records} - {""})
    for source in SAMPLED_SOURCES:
        rows = [r for r in records if r.source == source]
        out[f"faithful_{source}"] = _share([verdicts[id(r)] for r in rows])
        for level in all_levels:
            at = [verdicts[id(r)] for r in rows if levels.get(r.problem_id) == level]
            out[f"faithful_{source}_level_{level}"] = _share(at)
    return out


def _share(flags: Sequence[bool]) -> float:
    return sum(flags) / len(flags) if flags else float("nan")
