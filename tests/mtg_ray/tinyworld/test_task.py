"""The tiny world's task and styles: precedence, determinism, and gradeable solutions."""

import random

import pytest

from mtg_ray.grading import grade_many
from mtg_ray.tinyworld.styles import expert_solution, own_solution
from mtg_ray.tinyworld.task import LEVELS, apply_op, compact, evaluate, make_item, phrase
from mtg_ray.tinyworld.world import make_splits, small


def test_evaluation_follows_precedence_and_parentheses() -> None:
    steps = evaluate((7, "+", 6, "*", 12, "-", 5))
    assert steps is not None
    assert [(s.left, s.op, s.right, s.result) for s in steps] == [
        (6, "*", 12, 72),
        (7, "+", 72, 79),
        (79, "-", 5, 74),
    ]
    grouped = evaluate(("(", 7, "+", 6, ")", "*", 2))
    assert grouped is not None and [compact(s.after) for s in grouped] == ["13*2", "26"]
    chained = evaluate((24, "/", 6, "/", 2))
    assert chained is not None and chained[-1].result == 2  # left to right


def test_forbidden_steps_are_rejected() -> None:
    assert apply_op("-", 3, 5) is None
    assert apply_op("/", 7, 2) is None and apply_op("/", 7, 0) is None
    assert evaluate((3, "-", 5, "+", 9)) is None
    assert evaluate((9, "*", 9), max_value=50) is None


@pytest.mark.parametrize("level", sorted(LEVELS))
def test_every_level_draws_valid_problems(level: int) -> None:
    rng = random.Random(level)
    for _ in range(50):
        item = make_item(rng, level)
        assert sum(isinstance(t, str) and t in "+-*/" for t in item.expr) == LEVELS[level].n_ops
        assert 0 <= item.answer and all(s.result <= LEVELS[level].max_value for s in item.steps)


def test_splits_are_deterministic_disjoint_and_graded() -> None:
    cfg = small(seed=3)
    train, test = make_splits(cfg)
    again_train, again_test = make_splits(cfg)
    assert train == again_train and test == again_test
    other_train, _ = make_splits(small(seed=4))
    assert [i.question for i in train] != [i.question for i in other_train]
    assert len(train) == cfg.n_train and len(test) == cfg.n_test
    assert not {i.expr for i in train} & {i.expr for i in test}
    assert len({i.expr for i in train}) == len(train)
    # both splits hold every level; level 4 is in no pretraining mix (the knowledge gap)
    assert {i.level for i in test} == {i.level for i in train} == {1, 2, 3, 4}
    assert 4 not in cfg.levels("pretrain")


def test_both_styles_grade_true_and_a_slip_grades_false() -> None:
    train, test = make_splits(small(seed=0))
    rng = random.Random(0)
    items = train + test
    expert = [expert_solution(i, rng) for i in items]
    own = [own_solution(i) for i in items]
    pairs = [(s, str(i.answer)) for i, s in zip(items, expert, strict=True)]
    pairs += [(s, str(i.answer)) for i, s in zip(items, own, strict=True)]
    assert all(grade_many(pairs))
    slipped = [(own_solution(i, random.Random(k)), str(i.answer)) for k, i in enumerate(items)]
    assert sum(grade_many(slipped)) <= 0.05 * len(items)  # a slip changes the answer


def test_styles_differ() -> None:
    item = make_item(random.Random(1), 3)
    own, expert = own_solution(item), expert_solution(item, random.Random(1))
    assert own.startswith(compact(item.expr)) and "=" in own
    assert "=" not in expert and expert[0].isupper()
    assert own.endswith(f"\\boxed{{{item.answer}}}") and f"\\boxed{{{item.answer}}}" in expert


def test_questions_are_word_problems_or_expressions() -> None:
    rng = random.Random(0)
    expr = (3, "*", 4, "+", 5)
    texts = {phrase(rng, expr) for _ in range(40)}
    assert any("marbles" in t for t in texts)  # a story
    assert any("times" in t and "plus" in t for t in texts)  # words
    assert any("3 * 4 + 5" in t for t in texts)  # symbols
