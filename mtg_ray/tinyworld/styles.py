"""The two solution styles of the tiny world: the base model's own, and the expert's.

The paper's setting needs a policy gap: expert demonstrations that are correct but phrased and
ordered unlike what the base model writes, so they are unlikely under it. Here:

- own style (what the base model is pretrained to write): the expression in compact symbols,
  then one line per operation, `left op right = result` followed by what is left to evaluate,
  then the boxed answer::

      7+6*12-5
      6*12=72, 7+72-5
      7+72=79, 79-5
      79-5=74
      \\boxed{74}

  (each result is written right after its operands: a small model learns that far faster than
  results buried in a rewritten expression);

- expert style (the demonstrations in the train split): prose that first restates the
  expression, then one sentence per operation, commutative operands swapped, varied wording,
  and what is left to evaluate after each step (the same scratchpad, in other words)::

      We need 7 + 6 * 12 - 5. First, multiply 12 by 6 to get 72, which leaves 7 + 72 - 5.
      Next, adding 7 to 72 gives 79, which leaves 79 - 5. Finally, take 5 away from 79,
      leaving 74. The answer is \\boxed{74}.

  Pretraining writes a small share of its plain solutions in this style (`expert_style_rate`
  of the world's recipe), so the expert's text is unlikely under the base model but inside its
  support, as a real expert's is for a real base model.

Both end in `\\boxed{answer}` so `mtg_ray.grading.grade` applies. Responses start right after
the prompt's "Solution:" with no separator, so stripping a response never changes a record.
`own_solution` can also write a solution with one slip (a wrong intermediate result carried
through to a wrong answer): the pretraining corpus uses a few to keep the base model imperfect.
"""

import random

from mtg_ray.tinyworld.task import Expr, Item, Step, compact, evaluate, spaced

# Expert phrasing per operator: {a} op {b} = {r}; products and sums name their operands swapped.
EXPERT_PHRASES: dict[str, tuple[str, ...]] = {
    "+": ("add {b} to {a} to get {r}", "adding {b} to {a} gives {r}", "{b} more than {a} is {r}"),
    "-": ("subtract {b} from {a}, leaving {r}", "take {b} away from {a}, leaving {r}"),
    "*": ("multiply {b} by {a} to get {r}", "{b} groups of {a} make {r}"),
    "/": ("divide {a} by {b} to get {r}", "{a} split into {b} equal parts is {r} each"),
}
EXPERT_ENDINGS = ("The answer is \\boxed{{{r}}}.", "So the result is \\boxed{{{r}}}.")
EXPERT_OPENINGS = ("We need {e}.", "We evaluate {e}.")
EXPERT_LEFT = (", which leaves {e}", ", so we have {e}")
SLIP_DELTAS = (-10, -2, -1, 1, 2, 10)


def own_solution(item: Item, slip: random.Random | None = None) -> str:
    """The base model's style; with `slip`, one intermediate result is wrong (if one can be)."""
    steps = item.steps
    if slip is not None:
        steps = _slipped(item, slip) or steps
    lines = [compact(item.expr)] + [_own_line(s) for s in steps]
    return "\n".join(lines) + f"\n\\boxed{{{steps[-1].result}}}"


def _own_line(step: Step) -> str:
    line = f"{step.left}{step.op}{step.right}={step.result}"
    return line + (", " + compact(step.after) if len(step.after) > 1 else "")


def _slipped(item: Item, rng: random.Random) -> tuple[Step, ...] | None:
    """The steps with one result off by a small amount and the rest recomputed from it."""
    k = rng.randrange(len(item.steps))
    step = item.steps[k]
    for delta in rng.sample(SLIP_DELTAS, len(SLIP_DELTAS)):
        wrong = step.result + delta
        if wrong < 0:
            continue
        after: Expr = step.after[: step.at] + (wrong,) + step.after[step.at + 1 :]
        rest = evaluate(after)
        if rest is None:
            continue
        bad = Step(step.left, step.op, step.right, wrong, after, step.at)
        return item.steps[:k] + (bad,) + rest
    return None


def _connector(i: int, n: int) -> str:
    if n == 1:
        return ""
    if i == 0:
        return "First, "
    return "Finally, " if i == n - 1 else ("Next, ", "Then ")[i % 2]


def expert_solution(item: Item, rng: random.Random) -> str:
    """The expert's style: the expression, then one sentence per operation with what is left,
    wording drawn from `rng`."""
    sentences = [rng.choice(EXPERT_OPENINGS).format(e=spaced(item.expr))]
    for i, s in enumerate(item.steps):
        text = rng.choice(EXPERT_PHRASES[s.op]).format(a=s.left, b=s.right, r=s.result)
        if len(s.after) > 1:
            text += rng.choice(EXPERT_LEFT).format(e=spaced(s.after))
        lead = _connector(i, len(item.steps))
        sentences.append(lead + (text if lead else text[0].upper() + text[1:]) + ".")
    sentences.append(rng.choice(EXPERT_ENDINGS).format(r=item.answer))
    return " ".join(sentences)
