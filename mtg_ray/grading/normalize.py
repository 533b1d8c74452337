"""The in-process fast path: answer normalisation and plain-number comparison.

Follows the Qwen2.5-Math toolkit's `strip_string`/`math_equal` rules for the common cases, so
most answers are settled here in microseconds; anything else goes to the sandboxed symbolic check.
"""

import math
import re

_TEXT_WRAPPERS = re.compile(r"\\(?:text|textbf|mathrm|mbox|operatorname)\s*\{([^{}]*)\}")
_UNIT_WORDS = re.compile(
    r"\s*(?:degrees?|cm|mm|km|m|meters?|inches|inch|feet|foot|ft|units?|sq|square|dollars?|"
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
    s = _UNIT_WORDS.sub("", s).strip()
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


def to_number(s: str) -> float | None:
    """The value of a normalised plain number or simple fraction, else None."""
    if _NUMBER.match(s):
        return float(s)
    match = _SIMPLE_FRAC.match(s) or _SLASH_FRAC.match(s)
    if match is None:
        return None
    groups = match.groups()
    sign = -1.0 if len(groups) == 3 and groups[0] == "-" else 1.0
    num, den = groups[-2], groups[-1]
    try:
        value = float(num) / float(den)
    except (ValueError, ZeroDivisionError):
        return None
    return sign * value


def numbers_equal(a: float, b: float, rel_tol: float = 1e-4) -> bool:
    """Integers must match exactly (an off-by-one count is wrong at any size); other values
    within the Qwen grader's relative tolerance."""
    if a.is_integer() and b.is_integer():
        return a == b
    return math.isclose(a, b, rel_tol=rel_tol, abs_tol=1e-9)


def fast_verdict(pred: str, ref: str) -> bool | None:
    """True/False when the fast path can decide, None when the symbolic check must."""
    p, r = normalize(pred), normalize(ref)
    if p == r:
        return True
    pn, rn = to_number(p), to_number(r)
    if pn is not None and rn is not None:
        # A percentage may be written as its fraction ("10%" vs "0.1"), as the Qwen grader allows.
        return any(numbers_equal(pn, x) for x in (rn, rn / 100, rn * 100))
    return None
