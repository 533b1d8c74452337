import pytest

from mtg_ray.grading.extract import extract_answer


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("so the answer is \\boxed{5}.", "5"),
        ("\\boxed{1} then \\boxed{\\frac{a}{\\sqrt{b^{2}}}}", "\\frac{a}{\\sqrt{b^{2}}}"),
        ("$\\boxed{\\{1, 2\\}}$", "\\{1, 2\\}"),
        ("hence \\boxed 7$ done", "7"),
        ("\\fbox{x+1}", "x+1"),
        ("\\boxed{ $12$ }", "12"),
        ("We get 3. The answer is $42$.", "42"),
        ("So the final answer is: 3/4", "3/4"),
        ("16 - 3 - 4 = 9\n#### 18", "18"),
        ("no answer here", None),
        ("\\boxed{unclosed", None),
        ("\\boxed{}", None),
    ],
)
def test_extract_answer(text: str, answer: str | None) -> None:
    assert extract_answer(text) == answer


def test_deep_nesting_is_exact_up_to_the_answer_cap() -> None:
    text = "\\boxed{" + "{" * 400 + "1" + "}" * 400 + "}"
    assert extract_answer(text) == "{" * 400 + "1" + "}" * 400
    assert extract_answer("\\boxed{" + "{" * 10000 + "1" + "}" * 10000 + "}") is None
