"""The in-process fast path: answer normalisation and plain-number comparison.

Follows the Qwen2.5-Math toolkit's `strip_string`/`math_equal` rules for the common cases, so
most answers are settled here in microseconds; anything else goes to the sandboxed symbolic check.
"""

import re
from fractions import Fraction

_TEXT_WRAPPERS = re.compile(r"\\(?:text|textbf|mathrm|mbox|operatorname)\s*\{([^{}]*)\}")
# A unit word at the end (its leading spaces are stripped after the match: a leading `\s*` in the
# pattern would rescan a long run of spaces from every position, quadratic in its length).
_UNIT_WORDS = re.compile(
    r"(?:degrees?|cm|mm|km|m|meters?|inches|inch|feet|foot|ft|units?|sq|square|dollars?|"
    r"cents?|hours?|minutes?|seconds?|days?|years?|mph|miles?|pounds?|students?|people|ways)\b\.?$",
    re.IGNORECASE,
)
_NUMBER = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?$", re.IGNORECASE)
_SIMPLE_FRAC = re.compile(r"^([+-]?)\\frac\{?([+-]?[\d.]+)\}?\{?([+-]?[\d.]+)\}?$")
_SLASH_FRAC = re.compile(r"^([+-]?[\d.]+)/([+-]?[\d.]+)$")
_LHS = re.compile(r"^[a-zA-Z](?:_\{?\w+\}?)?\s*=\s*(?=[^=]+$)")


def normalize(answer: str) -> str:
    """Canonical text of an answer: spacing, delimiters, units, `\\dfrac`, degrees, `x =` gone."""
    s = answer.strip()
    s = s.replace("\n", "").replace("\\!", "").replace("\\,", "").replace("\\;", "")
    s = s.replace("\\left", "").replace("\\right", "").replace("\\displaystyle", "")
    s = s.replace("tfrac", "frac").replace("dfrac", "frac")
    s = s.replace("^{\\circ}", "").replace("^\\circ", "").replace("°", "")
    s = s.replace("\\$", "").replace("$", "").replace("\\%", "").replace("%", "")
    for _ in range(3):
        s = _TEXT_WRAPPERS.sub(r"\1", s)
    unit = _UNIT_WORDS.search(s)
    if unit is not None:
        s = s[: unit.start()]
    s = s.strip()
    s = _LHS.sub("", s)
    s = s.replace(" ", "").rstrip(".")
    s = re.sub(r"\\sqrt(\w)", r"\\sqrt{\1}", s)
    s = re.sub(r"\\frac(\d)(\d)", r"\\frac{\1}{\2}", s)
    if s.startswith("."):
        s = "0" + s
    if re.fullmatch(r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?", s):
        s = s.replace(",", "")  # thousands separators, not a tuple
    if re.fullmatch(r"\(?[A-Ea-e]\)?", s):
        s = s.strip("()").upper()  # multiple-choice letters
    return s


MAX_EXPONENT = 1000  # "1e999999999" is not worth an exact value


def to_number(s: str) -> Fraction | None:
    """The exact value of a normalised plain number or simple fraction, else None. Exact, so
    integers of any size compare exactly and 1e400 is neither inf nor 2e400."""
    match = _NUMBER.match(s)
    if match:
        exponent = re.search(r"e([+-]?\d+)$", s, re.IGNORECASE)
        if exponent and abs(int(exponent[1])) > MAX_EXPONENT:
            return None
        return Fraction(s)
    match = _SIMPLE_FRAC.match(s) or _SLASH_FRAC.match(s)
    if match is None:
        return None
    groups = match.groups()
    sign = -1 if len(groups) == 3 and groups[0] == "-" else 1
    try:
        value = Fraction(groups[-2]) / Fraction(groups[-1])
    except (ValueError, ZeroDivisionError):
        return None
    return sign * value


def numbers_equal(a: Fraction, b: Fraction, rel_tol: Fraction = Fraction(1, 10_000)) -> bool:
    """Integers must match exactly (an off-by-one count is wrong at any size); other values
    within the Qwen grader's relative tolerance, computed exactly."""
    if a.denominator == 1 and b.denominator == 1:
        return a == b
    return abs(a - b) <= max(rel_tol * max(abs(a), abs(b)), Fraction(1, 10**9))


def fast_verdict(pred: str, ref: str) -> bool | None:
    """True/False when the fast path can decide, None when the symbolic check must."""
    p, r = normalize(pred), normalize(ref)
    if p == r:
        return True
    pn, rn = to_number(p), to_number(r)
    if pn is not None and rn is not None:
        # A percentage may be written as its fraction ("10%" vs "0.1"): the Qwen2.5-Math
        # harness's rule, kept so our numbers match its; so 5 also passes for a reference 500.
        return any(numbers_equal(pn, x) for x in (rn, rn / 100, rn * 100))
    return None
