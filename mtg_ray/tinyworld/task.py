"""The tiny world's task: arithmetic with precedence, phrased as short word problems.

A problem is an expression over non-negative integers with `+ - * /` (and parentheses at the
harder levels). Every intermediate value is a non-negative integer and every division is exact,
so each problem has one integer answer that `mtg_ray.grading.grade` can check. Difficulty grows
with the level: more operations, longer numbers, parentheses. Evaluation follows the usual order
(innermost parentheses, then `*` and `/` left to right, then `+` and `-` left to right) one
operation at a time; the `Step`s are what both solution styles (`styles.py`) narrate.

Everything is drawn from a `random.Random` the caller seeds, so a seed fixes the data.
"""

import random
from collections.abc import Sequence
from dataclasses import dataclass

Token = int | str  # a number, an operator, "(" or ")"
Expr = tuple[Token, ...]

OPS = ("+", "-", "*", "/")
OP_WEIGHTS = (3, 3, 2, 2)  # sums and differences are the common case
PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2}
OP_WORDS = {"+": "plus", "-": "minus", "*": "times", "/": "divided by"}


@dataclass(frozen=True)
class Level:
    """How hard a problem is: its operation count and how large its numbers get."""

    n_ops: int
    max_operand: int  # literals next to + and -
    max_factor: int  # the left literal of a product or quotient
    max_small: int  # the right literal of a product or quotient (times tables)
    max_value: int  # bound on every intermediate value
    paren_prob: float  # chance of one parenthesised group


# Level 0 (one operation) is pretraining-only drill: the splits start at level 1. Level 4 (four
# operations) is never pretrained: the skill the expert demonstrations carry and the base lacks.
# Every level draws its numbers from the drill's facts (operands up to 20-30, times tables up to
# 9x9, values up to 100-150): what grows with the level is the chain, and level 4 is level 3
# with one operation more.
LEVELS: dict[int, Level] = {
    0: Level(n_ops=1, max_operand=20, max_factor=9, max_small=9, max_value=100, paren_prob=0.0),
    1: Level(n_ops=2, max_operand=20, max_factor=9, max_small=9, max_value=100, paren_prob=0.0),
    2: Level(n_ops=3, max_operand=20, max_factor=9, max_small=9, max_value=100, paren_prob=0.3),
    3: Level(n_ops=3, max_operand=30, max_factor=9, max_small=9, max_value=150, paren_prob=0.5),
    4: Level(n_ops=4, max_operand=30, max_factor=9, max_small=9, max_value=150, paren_prob=0.5),
}


@dataclass(frozen=True)
class Step:
    """One operation of the evaluation: `left op right = result`, and the expression after it."""

    left: int
    op: str
    right: int
    result: int
    after: Expr
    at: int  # index of `result` in `after`


@dataclass(frozen=True)
class Item:
    """A generated problem before it becomes a `mtg_ray.data.Problem`."""

    expr: Expr
    question: str
    level: int
    steps: tuple[Step, ...]

    @property
    def answer(self) -> int:
        return self.steps[-1].result


def apply_op(op: str, left: int, right: int) -> int | None:
    """`left op right`, or None where the world forbids it (negative, inexact division)."""
    if op == "+":
        return left + right
    if op == "-":
        return left - right if left >= right else None
    if op == "*":
        return left * right
    if op == "/":
        return left // right if right > 0 and left % right == 0 else None
    raise ValueError(f"unknown operator {op!r}")


def _innermost_span(expr: Expr) -> tuple[int, int]:
    """[start, end) of the innermost parenthesised group's content, or the whole expression."""
    start = 0
    for i, tok in enumerate(expr):
        if tok == "(":
            start = i + 1
        elif tok == ")":
            return start, i
    return 0, len(expr)


def reduce_once(expr: Expr) -> Step | None:
    """Apply the next operation in evaluation order; None if it is not allowed.

    A group left holding one number loses its parentheses in the same step.
    """
    start, end = _innermost_span(expr)
    inner = expr[start:end]
    ops = [i for i in range(1, len(inner), 2)]
    top = max(PRECEDENCE[str(inner[i])] for i in ops)
    at = next(i for i in ops if PRECEDENCE[str(inner[i])] == top)
    left, op, right = inner[at - 1], str(inner[at]), inner[at + 1]
    assert isinstance(left, int) and isinstance(right, int)
    result = apply_op(op, left, right)
    if result is None:
        return None
    lo, hi = start + at - 1, start + at + 2
    if len(inner) == 3 and start > 0:  # the group is done: drop its parentheses too
        lo, hi = lo - 1, hi + 1
    return Step(left, op, right, result, expr[:lo] + (result,) + expr[hi:], lo)


def evaluate(expr: Expr, max_value: int | None = None) -> tuple[Step, ...] | None:
    """Every step down to a single number; None if a step is forbidden or exceeds `max_value`."""
    steps: list[Step] = []
    while len(expr) > 1:
        step = reduce_once(expr)
        if step is None or (max_value is not None and step.result > max_value):
            return None
        steps.append(step)
        expr = step.after
    return tuple(steps)


def compact(expr: Sequence[Token]) -> str:
    """'7+6*12-5': the symbolic form the model's own style writes."""
    return "".join(str(t) for t in expr)


def spaced(expr: Sequence[Token], words: bool = False) -> str:
    """'7 + 6 * 12 - 5' (or '7 plus 6 times 12 minus 5'), parentheses hugging their content."""
    text = " ".join(OP_WORDS[t] if words and t in OP_WORDS else str(t) for t in expr)
    return text.replace("( ", "(").replace(" )", ")")


def _random_literals(rng: random.Random, ops: Sequence[str], level: Level) -> list[int]:
    """Numbers for a flat expression: small factors beside * and /, exact dividends."""
    nums: list[int] = []
    for i in range(len(ops) + 1):
        before = ops[i - 1] if i > 0 else None
        after = ops[i] if i < len(ops) else None
        if before in ("*", "/"):
            nums.append(rng.randint(2, level.max_small))
        elif after in ("*", "/"):
            nums.append(rng.randint(2, level.max_factor))
        else:
            nums.append(rng.randint(1, level.max_operand))
    for i, op in enumerate(ops):  # make "a / b" exact when a is a plain literal
        if op == "/" and (i == 0 or ops[i - 1] in ("+", "-")):
            nums[i] = nums[i + 1] * rng.randint(2, level.max_factor)
    return nums


def _interleave(nums: Sequence[int], ops: Sequence[str], group: tuple[int, int] | None) -> Expr:
    """Numbers and operators alternating; `group` = (first, last) literal to parenthesise."""
    out: list[Token] = []
    for i, num in enumerate(nums):
        if i > 0:
            out.append(ops[i - 1])
        if group and i == group[0]:
            out.append("(")
        out.append(num)
        if group and i == group[1]:
            out.append(")")
    return tuple(out)


def _random_group(rng: random.Random, n: int) -> tuple[int, int]:
    """A proper sub-range of at least two of `n` literals (never all of them)."""
    while True:
        first = rng.randrange(0, n - 1)
        last = rng.randrange(first + 1, n)
        if (first, last) != (0, n - 1):
            return first, last


def random_expression(rng: random.Random, level: int, max_tries: int = 1000) -> Expr:
    """A valid expression of the given level (rejection sampling)."""
    spec = LEVELS[level]
    for _ in range(max_tries):
        ops = rng.choices(OPS, OP_WEIGHTS, k=spec.n_ops)
        nums = _random_literals(rng, ops, spec)
        group = None
        if spec.n_ops >= 2 and rng.random() < spec.paren_prob:
            group = _random_group(rng, len(nums))
        expr = _interleave(nums, ops, group)
        if evaluate(expr, spec.max_value) is not None:
            return expr
    raise RuntimeError(f"no valid level-{level} expression in {max_tries} tries")


# Word-problem stories for the common shapes; {0}, {1}, {2} are the literals in order.
STORIES: dict[str, tuple[str, ...]] = {
    "a+b+c": ("Ann picks {0} apples, then {1} more, then {2} more. How many apples in all?",),
    "a+b-c": ("A bus has {0} riders. {1} get on and {2} get off. How many riders now?",),
    "a-b+c": ("A shelf has {0} books. {1} are taken and {2} are added. How many books now?",),
    "a*b+c": ("Sam buys {0} bags of {1} marbles and finds {2} more. How many marbles now?",),
    "a*b-c": ("Sam buys {0} bags of {1} marbles and loses {2}. How many marbles are left?",),
    "a+b*c": ("Mia has {0} stickers and buys {1} packs of {2}. How many stickers now?",),
    "a-b*c": ("Mia has {0} stickers and gives {1} friends {2} each. How many are left?",),
    "a/b+c": ("{0} cards are shared by {1} kids, then each gets {2} more. How many each?",),
    "a*b+c*d": ("Sam buys {0} bags of {1} marbles and {2} boxes of {3}. How many marbles?",),
}
FRAMES = ("What is {}?", "Compute {}.", "Evaluate {}.", "Find the value of {}.")


def shape(expr: Expr) -> str:
    """'a*b+c' for (3, '*', 4, '+', 5): the expression with its literals abstracted."""
    letters = iter("abcdefghij")
    return "".join(next(letters) if isinstance(t, int) else t for t in expr)


def phrase(rng: random.Random, expr: Expr, story_prob: float = 0.3) -> str:
    """The question text: a story where one fits, else the expression in words or symbols."""
    stories = STORIES.get(shape(expr), ())
    if stories and rng.random() < story_prob:
        return rng.choice(stories).format(*(t for t in expr if isinstance(t, int)))
    return rng.choice(FRAMES).format(spaced(expr, words=rng.random() < 0.5))


def make_item(rng: random.Random, level: int) -> Item:
    """One problem of `level`: expression, question text and evaluation steps."""
    expr = random_expression(rng, level)
    steps = evaluate(expr)
    assert steps is not None
    return Item(expr=expr, question=phrase(rng, expr), level=level, steps=steps)


def sample_items(
    rng: random.Random,
    n: int,
    level_weights: dict[int, float],
    exclude: set[Expr] | frozenset[Expr] = frozenset(),
    unique: bool = True,
    max_tries_factor: int = 50,
) -> list[Item]:
    """`n` problems with levels drawn by weight, none whose expression is in `exclude`.

    With `unique`, no two share an expression (so a test problem never hides in the train split
    under another phrasing).
    """
    levels, weights = zip(*sorted(level_weights.items()), strict=True)
    seen: set[Expr] = set()
    items: list[Item] = []
    for _ in range(max(n, 1) * max_tries_factor):
        if len(items) == n:
            break
        item = make_item(rng, rng.choices(levels, weights)[0])
        if item.expr in exclude or (unique and item.expr in seen):
            continue
        seen.add(item.expr)
        items.append(item)
    if len(items) < n:
        raise RuntimeError(f"only {len(items)} of {n} distinct problems could be drawn")
    return items
