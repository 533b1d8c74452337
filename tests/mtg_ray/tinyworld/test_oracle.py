"""The oracle's data and the stage shares the world's facts report."""

import random

import pytest

from mtg_ray.data import Problem
from mtg_ray.tinyworld.faithful import is_faithful
from mtg_ray.tinyworld.oracle import Resolved, oracle_problems, oracle_solution, stage_shares
from mtg_ray.tinyworld.styles import expert_solution, own_solution
from mtg_ray.tinyworld.task import sample_items


def problems(n: int = 30) -> list[Problem]:
    rng = random.Random(3)
    return [
        Problem(
            f"p{i}",
            item.question,
            str(item.answer),
            expert_solution(item, rng),
            "t",
            str(item.level),
        )  # fmt: skip
        for i, item in enumerate(sample_items(rng, n, {1: 1.0, 2: 1.0, 3: 1.0, 4: 1.0}))
    ]


def test_the_oracle_writes_each_problems_own_style_step_correct_solution() -> None:
    rng = random.Random(3)
    items = sample_items(rng, 30, {1: 1.0, 2: 1.0, 3: 1.0, 4: 1.0})
    for p, item in zip(problems(), items, strict=True):
        solution = oracle_solution(p)
        assert solution == own_solution(item) and is_faithful(p.expert_solution, solution)
    assert [p.expert_solution for p in oracle_problems(problems()[:2])] == [
        oracle_solution(p) for p in problems()[:2]
    ]
    with pytest.raises(ValueError, match="p0"):
        oracle_solution(Problem("p0", "q", "1", "The answer is \\boxed{1}.", "t"))


def test_stage_shares_count_self_solved_then_faithful_and_leaked_guided_per_level() -> None:
    shares = stage_shares(
        [
            Resolved("4", (False, True)),  # self-solved
            Resolved("4", (False, False), ((True, False), (True, True))),  # faithful
            Resolved("4", (False, False), ((True, False), (False, False))),  # leaked only
            Resolved("4", (False, False), ((False, False),)),  # not re-solved
            Resolved("1", (True,)),
        ]
    )
    assert shares["4"] == {
        "problems": 4, "self_solved": 0.25, "missed": 3,
        "guided_faithful": round(1 / 3, 4), "guided_leaked": round(1 / 3, 4),
    }  # fmt: skip
    assert shares["1"]["missed"] == 0 and shares["1"]["guided_faithful"] is None
    assert shares["all"]["problems"] == 5 and shares["all"]["self_solved"] == 0.4
