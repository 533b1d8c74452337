"""What a tiny world can teach and how its base model re-solves: the oracle's data, and the
shares the world's facts report from sampled self and guided stages.

The oracle is an upper bound no method gets: every train problem's own-style, step-correct
solution (what the base model would write if it knew the answer's steps). Trained on at the
methods' budget, it measures the ceiling of what the world's data can teach, a fact of the world
(`facts.json`), never a method row.
"""

import dataclasses
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from mtg_ray.data import Problem
from mtg_ray.tinyworld.faithful import expression_of
from mtg_ray.tinyworld.styles import own_solution
from mtg_ray.tinyworld.task import Item, evaluate


def oracle_solution(problem: Problem) -> str:
    """`problem`'s own-style, step-correct solution (its expression read off the expert's)."""
    expr = expression_of(problem.expert_solution or "")
    steps = evaluate(expr) if expr is not None else None
    if not steps or str(steps[-1].result) != problem.reference_answer:
        raise ValueError(f"{problem.problem_id}: no tiny-world expression in its solution")
    return own_solution(Item(expr=expr, question=problem.question, level=0, steps=steps))


def oracle_problems(problems: Sequence[Problem]) -> list[Problem]:
    """`problems` with the oracle's solution in place of the expert's."""
    return [dataclasses.replace(p, expert_solution=oracle_solution(p)) for p in problems]


@dataclass(frozen=True)
class Resolved:
    """One problem through the self stage and, if every self sample was wrong, the guided
    stage: each sample's verdicts (correct, and step-correct)."""

    level: str
    self_correct: tuple[bool, ...]
    guided: tuple[tuple[bool, bool], ...] = ()


def stage_shares(resolved: Sequence[Resolved]) -> dict[str, dict[str, float | int | None]]:
    """Per level and "all": problems, the share self-solved (>= 1 correct self sample), the
    missed count, and among the missed the share re-solved by a guided sample that is correct
    with right steps (`guided_faithful`) and the share re-solved only by right answers reached
    by wrong steps (`guided_leaked`)."""
    groups: dict[str, list[Resolved]] = defaultdict(list)
    for r in resolved:
        groups[r.level].append(r)
        groups["all"].append(r)

    def share(n: int, of: int) -> float | None:
        return round(n / of, 4) if of else None

    out: dict[str, dict[str, float | int | None]] = {}
    for level in sorted(groups):
        rs = groups[level]
        missed = [r for r in rs if not any(r.self_correct)]
        faithful = sum(any(ok and steps for ok, steps in r.guided) for r in missed)
        correct = sum(any(ok for ok, _ in r.guided) for r in missed)
        out[level] = {
            "problems": len(rs),
            "self_solved": share(len(rs) - len(missed), len(rs)),
            "missed": len(missed),
            "guided_faithful": share(faithful, len(missed)),
            "guided_leaked": share(correct - faithful, len(missed)),
        }
    return out
