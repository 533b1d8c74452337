"""Whether a tiny-world solution's reasoning is right, not only its final answer.

The grader sees only the boxed answer; a guided sample can read it off the reference its prompt
shows and reach it through nonsense. Both solution styles of the world (`styles.py`) narrate the
evaluation one operation at a time, so a response can be checked step by step:

- the expression it restates first is the problem's (the expert solution's opening restates it);
- every step's arithmetic is right (`left op right = result`, the world's rules: no negatives,
  exact division);
- every step is a legal rewrite of what is left: it replaces one `left op right` of the current
  expression by its result without changing the expression's value (so precedence and
  left-to-right order hold; any legal order is accepted, not only the world's), and the
  expression it says is left, if it says one, is that rewrite;
- the steps end in a single number, and the boxed answer is that number.

A response in neither style, or with a line that is none of these, is not faithful: this is a
diagnostic of the tiny world (a real dataset has no such oracle), reported beside the answer
rates, never the default filter.
"""

import re
from dataclasses import dataclass

from mtg_ray.tinyworld.styles import EXPERT_ENDINGS, EXPERT_LEFT, EXPERT_OPENINGS, EXPERT_PHRASES
from mtg_ray.tinyworld.task import Expr, Token, apply_op, evaluate

_TOKEN = re.compile(r"\s*(\d+|[-+*/()])")
_OWN_STEP = re.compile(r"(\d+)([-+*/])(\d+)=(\d+)(?:, (.+))?")
_BOXED = re.compile(r"\\boxed\{(\d+)\}")


@dataclass(frozen=True)
class Verdict:
    """`faithful`, or the first thing found wrong (`reason`)."""

    faithful: bool
    reason: str = ""


@dataclass(frozen=True)
class _Claim:
    """One step as written: left op right = result, and what it says is left (if it does)."""

    left: int
    op: str
    right: int
    result: int
    after: Expr | None


def parse_expression(text: str) -> Expr | None:
    """Tokens of an arithmetic expression ('7+6*12-5' or '7 + 6 * 12 - 5'); None if the text
    is anything else."""
    tokens: list[Token] = []
    pos, text = 0, text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            return None
        tok = m.group(1)
        tokens.append(int(tok) if tok.isdigit() else tok)
        pos = m.end()
    return tuple(tokens) or None


def _template_regex(template: str) -> str:
    """A phrase template ('add {b} to {a} to get {r}') as a regex with named number groups."""
    parts = re.split(r"(\{[abr]\})", template)
    return "".join(
        f"(?P<{p[1]}>\\d+)" if re.fullmatch(r"\{[abr]\}", p) else re.escape(p) for p in parts
    )


_EXPERT_STEP = [
    (op, re.compile(_template_regex(t), re.I)) for op, ts in EXPERT_PHRASES.items() for t in ts
]
_EXPERT_OPENING = re.compile(
    "|".join(
        re.escape(o).replace(r"\{e\}", f"(?P<e{i}>[^.]+)") for i, o in enumerate(EXPERT_OPENINGS)
    )
)
_EXPERT_LEFT = [re.escape(x).replace(r"\{e\}", "([^,.]+)") for x in EXPERT_LEFT]
_CONNECTORS = ("First, ", "Next, ", "Then ", "Finally, ")


def expression_of(expert_solution: str) -> Expr | None:
    """The problem's expression, as the expert solution's opening sentence restates it."""
    m = _EXPERT_OPENING.match(expert_solution.strip())
    if m is None:
        return None
    text = next(v for v in m.groupdict().values() if v is not None)
    return parse_expression(text)


def _own_claims(lines: list[str]) -> list[_Claim] | str:
    claims = []
    for line in lines:
        m = _OWN_STEP.fullmatch(line.strip())
        if m is None:
            return f"unreadable step {line.strip()!r}"
        after = parse_expression(m.group(5)) if m.group(5) else None
        if m.group(5) and after is None:
            return f"unreadable expression in {line.strip()!r}"
        claims.append(_Claim(int(m.group(1)), m.group(2), int(m.group(3)), int(m.group(4)), after))
    return claims


def _expert_claim(sentence: str) -> _Claim | str:
    body = sentence.strip().removesuffix(".")
    for lead in _CONNECTORS:
        body = body.removeprefix(lead)
    after = None
    for pattern in _EXPERT_LEFT:
        m = re.search(pattern + "$", body)
        if m:
            after = parse_expression(m.group(1))
            if after is None:
                return f"unreadable expression in {sentence.strip()!r}"
            body = body[: m.start()]
            break
    for op, regex in _EXPERT_STEP:
        m = regex.fullmatch(body)
        if m:
            return _Claim(int(m["a"]), op, int(m["b"]), int(m["r"]), after)
    return f"unreadable step {sentence.strip()!r}"


def _split(response: str) -> tuple[Expr | None, list[_Claim], int] | str:
    """(restated expression, steps, boxed answer) of a response in either style, or why not."""
    text = response.strip()
    boxed = _BOXED.findall(text)
    if not boxed:
        return "no boxed answer"
    answer = int(boxed[-1])
    opening = _EXPERT_OPENING.match(text)
    if opening is not None:  # the expert's prose
        sentences = re.split(r"(?<=\.)\s+", text)
        restated = parse_expression(next(v for v in opening.groupdict().values() if v))
        endings = [e.format(r=answer) for e in EXPERT_ENDINGS]
        if sentences[-1] not in endings:
            return f"unreadable ending {sentences[-1]!r}"
        claims: list[_Claim] = []
        for sentence in sentences[1:-1]:
            claim = _expert_claim(sentence)
            if isinstance(claim, str):
                return claim
            claims.append(claim)
        return restated, claims, answer
    lines = [line for line in text.splitlines() if line.strip()]
    if lines[-1].strip() != f"\\boxed{{{answer}}}":
        return f"unreadable ending {lines[-1]!r}"
    own = _own_claims(lines[1:-1])
    if isinstance(own, str):
        return own
    return parse_expression(lines[0]), own, answer


def _rewrites(expr: Expr, claim: _Claim) -> list[Expr]:
    """Every expression `claim` can turn `expr` into: one `left op right` (operands in either
    order for + and *) replaced by the result, a group left holding one number unwrapped."""
    orders = {(claim.left, claim.right)}
    if claim.op in "+*":
        orders.add((claim.right, claim.left))
    out = []
    for i in range(1, len(expr) - 1):
        if expr[i] != claim.op or (expr[i - 1], expr[i + 1]) not in orders:
            continue
        lo, hi = i - 1, i + 2
        if 0 < lo and hi < len(expr) and expr[lo - 1] == "(" and expr[hi] == ")":
            lo, hi = lo - 1, hi + 1
        out.append(expr[:lo] + (claim.result,) + expr[hi:])
    return out


def _value(expr: Expr) -> int | None:
    steps = evaluate(expr) if len(expr) > 1 else ()
    if steps is None:
        return None
    return steps[-1].result if steps else expr[0] if isinstance(expr[0], int) else None


def check(expr: Expr, response: str) -> Verdict:
    """Whether `response` solves `expr` faithfully (module docstring)."""
    parsed = _split(response)
    if isinstance(parsed, str):
        return Verdict(False, parsed)
    restated, claims, answer = parsed
    if restated != expr:
        return Verdict(False, "the restated expression is not the problem's")
    value, current = _value(expr), expr
    for claim in claims:
        if apply_op(claim.op, claim.left, claim.right) != claim.result:
            step = f"{claim.left}{claim.op}{claim.right}={claim.result}"
            return Verdict(False, f"wrong arithmetic {step}")
        legal = [e for e in _rewrites(current, claim) if _value(e) == value]
        if claim.after is not None:
            legal = [e for e in legal if e == claim.after]
        if not legal:
            return Verdict(False, f"step {claim.left}{claim.op}{claim.right} is not a legal step")
        current = legal[0]
    if len(current) != 1:
        return Verdict(False, "the steps stop before one number is left")
    if current[0] != answer:
        return Verdict(False, "the boxed answer is not where the steps end")
    return Verdict(True)


def is_faithful(expert_solution: str, response: str) -> bool:
    """`check_record(...).faithful`."""
    return check_record(expert_solution, response).faithful


def check_record(expert_solution: str, response: str) -> Verdict:
    """`check` against the expression the problem's expert solution restates."""
    expr = expression_of(expert_solution)
    if expr is None:
        return Verdict(False, "the problem's expression is unknown (no tiny-world expert solution)")
    return check(expr, response)
