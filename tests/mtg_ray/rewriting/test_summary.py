import math

import numpy as np
import pytest

from mtg_ray.data import Problem
from mtg_ray.rewriting import expert_record
from mtg_ray.rewriting.stages import _sample_record
from mtg_ray.rewriting.summary import (
    faithful_shares,
    normalised_weight_variance,
    record_log_ratios,
    stage_fractions,
    summarize,
)
from mtg_ray.rollout import Sample, SamplingConfig


def expert(pid: str, n: int):
    return expert_record(Problem(pid, "q", "1", expert_solution="e"), "p", [1], [2] * n)


def sampled(pid: str, source: str, logprobs: list[float]):
    sample = Sample("t", tuple(range(3, 3 + len(logprobs))), tuple(logprobs), "stop", 0)
    problem = Problem(pid, "q", "1", expert_solution="e")
    return _sample_record(problem, "p", [1], sample, SamplingConfig(max_tokens=8), source)


def test_log_ratios_use_behaviour_where_known_and_zero_for_experts() -> None:
    recs = [sampled("a", "self", [-1.0, -3.0]), expert("b", 2)]
    lr = record_log_ratios(recs, [[-1.5, -2.5], [-4.0, -2.0]])
    assert lr.tolist() == pytest.approx([0.0, -3.0])
    with pytest.raises(ValueError, match="'b': 1 log-probs for 2"):
        record_log_ratios(recs, [[-1.0, -1.0], [-1.0]])


def test_normalised_variance_is_scale_free() -> None:
    lr = np.array([0.0, -1.0, -2.0])
    assert normalised_weight_variance(lr) == pytest.approx(normalised_weight_variance(lr - 50))
    assert normalised_weight_variance([3.0, 3.0]) == 0.0
    w = np.exp(lr)
    assert normalised_weight_variance(lr) == pytest.approx(np.var(w / w.mean()))
    assert math.isnan(normalised_weight_variance([]))


def test_summary_counts_problems_per_stage() -> None:
    rewritten = [sampled("a", "self", [-1.0]), sampled("b", "guided", [-2.0]), expert("c", 1)]
    assert stage_fractions(rewritten) == pytest.approx(
        {"self": 1 / 3, "guided": 1 / 3, "teacher": 0.0, "expert": 1 / 3}
    )
    raw = [expert(p, 1) for p in "abc"]
    s = summarize(rewritten, [[-1.0], [-1.0], [-5.0]], raw, [[-4.0], [-6.0], [-5.0]])
    assert s["problems"] == 3 and s["records"] == 3
    assert s["logprob_expert"] == pytest.approx(-5.0)
    assert s["logprob_rewritten"] == pytest.approx(-7 / 3)
    assert s["var_expert"] > 0 and s["expert_share"] == pytest.approx(1 / 3)
    assert s["var_self"] == 0.0 and s["ess_self"] == 1.0  # one record: nothing varies
    assert s["logprob_guided"] == pytest.approx(-1.0)


def test_summary_reports_each_sampled_source_apart_from_the_expert_share() -> None:
    """Self records at the policy (log w = 0) stay at variance 0 however many experts are
    mixed in; a pooled variance would grow with the expert share."""
    rewritten = [sampled(f"s{i}", "self", [-1.0, -1.0]) for i in range(4)]
    rewritten += [sampled("g", "guided", [-3.0]), expert("e1", 2), expert("e2", 2)]
    policy = [[-1.0, -1.0]] * 4 + [[-1.0], [-6.0, -6.0], [-8.0, -8.0]]
    s = summarize(rewritten, policy, [expert("x", 1)], [[-2.0]])
    assert s["var_self"] == 0.0 and s["ess_self"] == 1.0 and s["logprob_self"] == -1.0
    assert s["expert_share"] == pytest.approx(2 / 7) and s["ess_guided"] == 1.0
    assert math.isnan(summarize(rewritten[:4], policy[:4], [], [])["var_guided"])


def test_faithful_shares_count_kept_sampled_records_per_source_and_level() -> None:
    recs = [
        sampled("a", "self", [-1.0]),
        sampled("b", "self", [-1.0]),
        sampled("c", "guided", [-1.0]),
        expert("d", 2),
    ]
    levels = {"a": "1", "b": "2", "c": "2", "d": "3"}
    good = {"a"}
    shares = faithful_shares(recs, levels, lambda r: r.problem_id in good)
    assert shares["faithful_self"] == 0.5 and shares["faithful_guided"] == 0.0
    assert shares["faithful_self_level_1"] == 1.0 and shares["faithful_self_level_2"] == 0.0
    assert math.isnan(shares["faithful_guided_level_1"])  # no guided record at level 1
    assert math.isnan(shares["faithful_self_level_3"])  # level 3 fell back to the expert
    checked = []
    faithful_shares(recs, levels, lambda r: checked.append(r.problem_id) or True)
    assert sorted(checked) == ["a", "b", "c"]  # an expert demonstration is not checked
