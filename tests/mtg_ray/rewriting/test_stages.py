from collections import Counter

import pytest

from mtg_ray.data import Problem
from mtg_ray.rewriting.stages import (
    SelectionConfig,
    choose_correct,
    expert_record,
    needs_guided,
    rewrite,
)
from mtg_ray.rollout import Graded, Sample, SamplingConfig

PROBLEM = Problem(
    problem_id="p1",
    question="What is 2+3?",
    reference_answer="5",
    expert_solution="Add: 2+3=5. \\boxed{5}",
)
PROMPT, PROMPT_IDS, EXPERT_IDS = "Problem: What is 2+3?\nSolution:", [1, 2, 3], [7, 8, 9, 10]


SAMPLING = SamplingConfig(n=2, temperature=1.0, top_p=1.0, max_tokens=64, seed=11)


def sample(text: str, correct: bool, version: int = 3) -> tuple[Sample, bool]:
    ids = tuple(range(len(text)))
    return Sample(text, ids, tuple(-0.5 for _ in ids), "stop", version), correct


def graded(items: list[tuple[Sample, bool]]) -> Graded:
    return Graded(tuple(s for s, _ in items), tuple(c for _, c in items), SAMPLING)


def test_self_sample_wins_and_keeps_its_provenance() -> None:
    selfs = graded([sample("wrong", False), sample("right \\boxed{5}", True, version=4)])
    guided = graded([sample("guided \\boxed{5}", True)])
    (rec,) = rewrite(PROBLEM, PROMPT, PROMPT_IDS, EXPERT_IDS, selfs, guided, SelectionConfig())
    assert rec.source == "self"
    assert rec.response == "right \\boxed{5}"
    assert rec.policy_version == 4
    assert rec.behaviour_logprobs == [-0.5] * len(rec.response_token_ids)
    assert rec.prompt == PROMPT and rec.prompt_token_ids == PROMPT_IDS
    assert rec.temperature == 1.0 and rec.seed == 11 and rec.correct


def test_guided_used_only_when_no_self_sample_is_correct() -> None:
    selfs = graded([sample("wrong", False), sample("also wrong", False)])
    guided = graded([sample("nope", False), sample("retold \\boxed{5}", True)])
    assert needs_guided(selfs)
    (rec,) = rewrite(PROBLEM, PROMPT, PROMPT_IDS, EXPERT_IDS, selfs, guided, SelectionConfig())
    assert rec.source == "guided"
    assert rec.response == "retold \\boxed{5}"
    # The training record pairs the plain prompt with the re-solution: no reference in it.
    assert rec.prompt == PROMPT and "Reference" not in rec.prompt


def test_expert_fallback_when_both_stages_fail() -> None:
    selfs, guided = graded([sample("wrong", False)]), graded([sample("still wrong", False)])
    (rec,) = rewrite(PROBLEM, PROMPT, PROMPT_IDS, EXPERT_IDS, selfs, guided, SelectionConfig())
    assert rec.source == "expert"
    assert rec.response == PROBLEM.expert_solution
    assert rec.response_token_ids == EXPERT_IDS
    assert rec.behaviour_logprobs is None and rec.policy_version == -1


def test_expert_fallback_without_expert_solution_is_an_error() -> None:
    bare = Problem(problem_id="p2", question="q", reference_answer="1")
    with pytest.raises(ValueError, match="p2"):
        expert_record(bare, PROMPT, PROMPT_IDS, [])


def test_keep_policies() -> None:
    samples = graded([sample(f"s{i}", i % 2 == 0) for i in range(8)])  # 4 correct
    assert len(choose_correct(samples, SelectionConfig(keep="one"), "p", "self")) == 1
    assert [s.text for s in choose_correct(samples, SelectionConfig(keep="all"), "p", "self")] == [
        "s0",
        "s2",
        "s4",
        "s6",
    ]
    kept = choose_correct(samples, SelectionConfig(keep="up_to", max_per_problem=3), "p", "self")
    assert len(kept) == 3 and {s.text for s in kept} <= {"s0", "s2", "s4", "s6"}
    assert (
        len(choose_correct(samples, SelectionConfig(keep="up_to", max_per_problem=9), "p", "s"))
        == 4
    )
    wrong = graded([sample("x", False)])
    assert choose_correct(wrong, SelectionConfig(keep="all"), "p", "self") == []


def test_choice_is_random_across_problems_but_reproducible() -> None:
    samples = graded([sample(f"s{i}", True) for i in range(8)])
    cfg = SelectionConfig(keep="one", seed=0)
    picks = [choose_correct(samples, cfg, f"p{i}", "self")[0].text for i in range(200)]
    again = [choose_correct(samples, cfg, f"p{i}", "self")[0].text for i in range(200)]
    assert picks == again
    counts = Counter(picks)
    assert len(counts) == 8 and max(counts.values()) < 50  # roughly uniform over 8 choices
    other_seed = [
        choose_correct(samples, SelectionConfig(seed=1), f"p{i}", "self")[0].text
        for i in range(200)
    ]
    assert other_seed != picks


def test_config_and_sample_validation() -> None:
    with pytest.raises(ValueError, match="keep"):
        SelectionConfig(keep="best")
    with pytest.raises(ValueError, match="max_per_problem"):
        SelectionConfig(keep="up_to", max_per_problem=0)
    with pytest.raises(ValueError, match="log-probs"):
        Sample("t", (1, 2), (-0.1,), "stop", 0)
    with pytest.raises(ValueError, match="verdicts"):
        Graded((sample("t", True)[0],), (True, False), SAMPLING)
