import pytest

from mtg_ray.grading.normalize import fast_verdict, normalize, to_number


@pytest.mark.parametrize(
    ("raw", "norm"),
    [
        ("\\dfrac{1}{2}", "\\frac{1}{2}"),
        ("\\frac12", "\\frac{1}{2}"),
        ("\\left( 3, \\frac{\\pi}{2} \\right)", "(3,\\frac{\\pi}{2})"),
        ("90^\\circ", "90"),
        ("5 \\text{ cm}", "5"),
        ("\\$18.90", "18.90"),
        ("x = 5", "5"),
        ("1,000", "1000"),
        ("(B)", "B"),
        ("\\sqrt2", "\\sqrt{2}"),
        (".5", "0.5"),
    ],
)
def test_normalize(raw: str, norm: str) -> None:
    assert normalize(raw) == norm


def test_numbers_and_fractions() -> None:
    assert to_number("-\\frac{3}{4}") == -0.75
    assert to_number("3/4") == 0.75
    assert to_number("\\frac{1}{0}") is None
    assert to_number("x") is None


@pytest.mark.parametrize(
    ("pred", "ref", "verdict"),
    [
        ("0.5", "\\frac{1}{2}", True),
        ("1,000", "1000", True),
        ("10\\%", "0.1", True),
        ("3.14159", "3.1416", True),
        ("6", "5", False),
        ("\\sqrt{2}/2", "\\frac{\\sqrt{2}}{2}", None),
    ],
)
def test_fast_verdict(pred: str, ref: str, verdict: bool | None) -> None:
    assert fast_verdict(pred, ref) is verdict
