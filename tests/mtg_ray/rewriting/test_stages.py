from collections import Counter

import pytest

from mtg_ray.data import Problem
from mtg_ray.rewriting.stages import (
    ScreenConfig,
    SelectionConfig,
    choose_correct,
    copied_share,
    expert_record,
    leak_gate,
    leak_score,
    mask_answer,
    needs_guided,
    rewrite,
    screen,
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


REFERENCE = (
    "We need 7 + 6 * 12 - 5. First, multiply 12 by 6 to get 72, which leaves 7 + 72 - 5. "
    "Next, adding 7 to 72 gives 79, which leaves 79 - 5. Finally, take 5 away from 79, "
    "leaving 74. The answer is \\boxed{74}."
)
OWN = "7+6*12-5\n6*12=72, 7+72-5\n7+72=79, 79-5\n79-5=74\n\\boxed{74}"


def graded_of(*samples: tuple[Sample, bool], finish: tuple[str, ...] = ()) -> Graded:
    finish = finish or ("stop",) * len(samples)
    done = [
        (Sample(s.text, s.token_ids, s.logprobs, f, s.policy_version), ok)
        for (s, ok), f in zip(samples, finish, strict=True)
    ]
    return Graded(tuple(s for s, _ in done), tuple(ok for _, ok in done), SAMPLING)


def test_a_correct_sample_cut_at_max_tokens_is_never_kept() -> None:
    graded = graded_of(
        sample(OWN, True),
        sample(OWN, True),
        sample("7+", False),
        finish=("length", "stop", "length"),
    )
    for stage in ("self", "guided"):
        kept, dropped = screen(graded, stage, REFERENCE, ScreenConfig())
        assert kept.correct == (False, True, False)  # a wrong truncated one is no drop
        assert dropped == {"unfinished": 1, "copied": 0}
    alone = graded_of(sample(OWN, True), finish=("length",))
    kept, _ = screen(alone, "self", "", ScreenConfig())
    assert needs_guided(kept)  # its only right sample was cut: the problem goes to stage 2


def test_a_guided_sample_that_copies_its_reference_fails() -> None:
    copy = REFERENCE.replace("We need", "We evaluate")  # one word changed
    graded = graded_of(sample(copy, True), sample(OWN, True))
    kept, dropped = screen(graded, "guided", REFERENCE, ScreenConfig())
    assert kept.correct == (False, True) and dropped == {"unfinished": 0, "copied": 1}
    assert copied_share(copy, REFERENCE, 4) > 0.9 and copied_share(OWN, REFERENCE, 4) == 0.0
    kept, dropped = screen(graded, "self", REFERENCE, ScreenConfig())  # self saw no reference
    assert kept.correct == (True, True) and dropped["copied"] == 0
    loose = ScreenConfig(copy_max_share=1.0)  # only a copy of every n-gram fails
    assert screen(graded, "guided", REFERENCE, loose)[0].correct == (True, True)


def test_the_leak_gate_fails_correct_guided_samples_that_lean_on_the_reference() -> None:
    leaned = Sample("x", (1, 2), (-0.1, -0.1), "stop", 0)  # likely only beside the reference
    own = Sample("y", (3, 4), (-0.5, -0.5), "stop", 0)
    wrong = Sample("z", (5,), (-0.1,), "stop", 0)
    graded = Graded((leaned, own, wrong), (True, True, False), SAMPLING)
    plain = [[-2.0, -1.0], [-0.6, -0.5], None]  # on the plain prompt; the wrong one unscored
    assert leak_score(plain[0], leaned.logprobs) == pytest.approx(-1.4)
    kept, dropped = leak_gate(graded, plain, threshold=-0.2)
    assert kept.correct == (False, True, False) and dropped == {"leaked": 1}
    assert leak_gate(graded, plain, threshold=-2.0)[0].correct == graded.correct


def test_a_masked_reference_loses_the_sentence_with_its_answer() -> None:
    assert mask_answer(REFERENCE) == (
        "We need 7 + 6 * 12 - 5. First, multiply 12 by 6 to get 72, which leaves 7 + 72 - 5. "
        "Next, adding 7 to 72 gives 79, which leaves 79 - 5. Finally, take 5 away from 79, "
        "leaving 74."
    )
    assert mask_answer(OWN) == "7+6*12-5\n6*12=72, 7+72-5\n7+72=79, 79-5\n79-5=74"
    assert mask_answer("no answer here") == "no answer here"
