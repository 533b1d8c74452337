"""The symbolic check, run only inside the sandbox worker process (it may hang or blow up).

math-verify (HF) parses LaTeX into sympy and compares with the Qwen2.5-Math grader's rules
(intervals, tuples, sets, units, percentages, equations), so we use it rather than re-deriving
those rules; its own signal-based timeouts are a second line behind the sandbox's hard kill.
"""

from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

_CONFIG = [LatexExtractionConfig(), ExprExtractionConfig()]


def symbolic_equal(pred: str, ref: str, timeout: int = 3) -> bool:
    """Whether two extracted answers are mathematically equal; False on any failure."""
    try:
        gold = parse(f"${ref}$", extraction_config=_CONFIG, parsing_timeout=timeout)
        answer = parse(f"${pred}$", extraction_config=_CONFIG, parsing_timeout=timeout)
        if not gold or not answer:
            return False
        return bool(verify(gold, answer, timeout_seconds=timeout))
    except Exception:
        return False
