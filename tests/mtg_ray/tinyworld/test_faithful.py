"""The step-by-step check: the world's own solutions (both styles) pass, corrupted ones do not,
and a right answer reached through wrong steps is caught."""

import random

import pytest

from mtg_ray.tinyworld.faithful import check, check_record, expression_of, parse_expression
from mtg_ray.tinyworld.styles import expert_solution, own_solution
from mtg_ray.tinyworld.task import make_item


def items(n: int, seed: int = 0):
    rng = random.Random(seed)
    return [(make_item(rng, rng.choice([1, 2, 3, 4])), random.Random(i)) for i in range(n)]


def test_the_worlds_own_solutions_are_faithful_in_both_styles() -> None:
    for item, rng in items(200):
        expert = expert_solution(item, rng)
        assert expression_of(expert) == item.expr
        assert check(item.expr, own_solution(item)).faithful, own_solution(item)
        assert check(item.expr, expert).faithful, expert
        assert check_record(expert, own_solution(item)).faithful


def test_a_slipped_step_is_caught_even_when_the_steps_agree_with_each_other() -> None:
    slipped = 0
    for item, rng in items(150):
        text = own_solution(item, slip=rng)
        if text == own_solution(item):
            continue
        slipped += 1
        verdict = check(item.expr, text)
        assert not verdict.faithful and "arithmetic" in verdict.reason, (text, verdict)
    assert slipped > 120


# "What is 43 plus 38 minus 32 divided by 4?" (73): the guided sample issue 22 quotes, steps
# made up, the answer read off the reference.
LEAKED = "43+32-32-3\n43+32=63, 63-32-3\n63-32=71, 71-3\n71-3=73\n\\boxed{73}"
EXPR = parse_expression("43 + 38 - 32 / 4")


@pytest.mark.parametrize(
    ("response", "reason"),
    [
        (LEAKED, "restated expression"),
        ("43+38-32/4\n43+38=81, 81-32/4\n81-32=49, 49/4\n49/4=73\n\\boxed{73}", "not a legal"),
        ("43+38-32/4\n32/4=8, 43+38-8\n43+38=81, 81-8\n81-8=70\n\\boxed{73}", "arithmetic"),
        ("43+38-32/4\n32/4=8, 43+38-8\n43+38=81, 81-8\n\\boxed{73}", "stop before"),
        ("43+38-32/4\n32/4=8, 43+38-8\n43+38=81, 81-8\n81-8=73\n\\boxed{74}", "boxed answer"),
        ("43+38-32/4\n32/4=8, 43+38-9\n43+38=81, 81-8\n81-8=73\n\\boxed{73}", "not a legal"),
        ("43+38-32/4\nthe answer is clear\n\\boxed{73}", "unreadable"),
        ("We need 43 + 38 - 32 / 4. The answer is \\boxed{73}.", "stop before"),
        ("43+38-32/4\n32/4=8, 43+38-8\n43+38=81, 81-8\n81-8=73", "no boxed"),
    ],
)
def test_wrong_reasoning_is_not_faithful(response: str, reason: str) -> None:
    verdict = check(EXPR, response)
    assert not verdict.faithful and reason in verdict.reason, verdict


def test_any_legal_order_is_faithful_and_an_illegal_one_is_not() -> None:
    other_order = "43+38-32/4\n32/4=8, 43+38-8\n38-8=30, 43+30\n43+30=73\n\\boxed{73}"
    assert check(EXPR, other_order).faithful  # 43+38-8 = 43+(38-8): same value
    ten = parse_expression("10-3+2")
    assert not check(ten, "10-3+2\n3+2=5, 10-5\n10-5=5\n\\boxed{5}").faithful  # 10-(3+2)
    grouped = parse_expression("(2+3)*4")
    assert check(grouped, "(2+3)*4\n2+3=5, 5*4\n5*4=20\n\\boxed{20}").faithful
    assert check(grouped, "(2+3)*4\n3+2=5, 5*4\n4*5=20\n\\boxed{20}").faithful  # commutes


def test_without_a_tiny_world_expert_solution_there_is_no_verdict_to_give() -> None:
    verdict = check_record("Let x be the number of apples.", "x=3\n\\boxed{3}")
    assert not verdict.faithful and "unknown" in verdict.reason
