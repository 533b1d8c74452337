"""Final-answer extraction from a whole model response.

Order of preference, as in the Qwen2.5-Math toolkit: the last `\\boxed{...}` (or `\\fbox{...}`,
or `\\boxed 5`), then "the (final) answer is ...", then GSM8K's `#### ...`. Braces are matched in
one linear pass over the text, so neither deep nesting nor thousands of unclosed `\\boxed{` cost
more than reading the text, and unbalanced input yields None. Only the last MAX_RESPONSE_CHARS
characters are read (the final answer is at the end), and an answer longer than
MAX_ANSWER_CHARS is no answer: real final answers are short, and every later step on it
(normalisation, comparison) then works on a bounded string.
"""

import re

_BOX = re.compile(r"\\(?:boxed|fbox)")
_ANSWER_IS = re.compile(r"(?:final answer|the answer) is[:\s]*(.+)", re.IGNORECASE)
_HASHES = re.compile(r"####\s*(.+)")
MAX_RESPONSE_CHARS = 100_000
MAX_ANSWER_CHARS = 1_000


def _closing_braces(text: str) -> dict[int, int]:
    """Index of each `{` -> index of its matching `}`, in one left-to-right pass (a stack).

    Escaped braces (`\\{`, `\\}`, as in set notation) do not count; an unclosed `{` is absent.
    """
    closing: dict[int, int] = {}
    stack: list[int] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "{":
            stack.append(i)
        elif ch == "}" and stack:
            closing[stack.pop()] = i
        i += 1
    return closing


def _last_boxed(text: str) -> str | None:
    closing: dict[int, int] | None = None
    for match in reversed(list(_BOX.finditer(text))):
        rest = match.end()
        while rest < len(text) and text[rest] == " ":
            rest += 1
        if rest < len(text) and text[rest] == "{":
            if closing is None:
                closing = _closing_braces(text)
            if rest in closing:
                return text[rest + 1 : closing[rest]]
        elif rest > match.end() and rest < len(text):
            # "\boxed 5": the answer runs to the next "$" or whitespace.
            return re.split(r"[\s$]", text[rest:], maxsplit=1)[0]
    return None


def clean_answer(answer: str) -> str:
    """Strip the wrapping that is not part of an answer: spaces, `$`, a trailing period."""
    answer = answer.strip()
    while answer.startswith("$") and answer.endswith("$") and len(answer) > 1:
        answer = answer[1:-1].strip()
    return answer.rstrip(".").strip().strip("$").strip()


def boxed_answer(text: str) -> str | None:
    """The content of the last `\\boxed{}` of `text` (cleaned), or None: a reference answer as
    the paper takes it from an expert solution, with no fallback to other answer forms."""
    answer = _last_boxed(text[-MAX_RESPONSE_CHARS:])
    if answer is None or len(answer) > MAX_ANSWER_CHARS:
        return None
    return clean_answer(answer) or None


def extract_answer(text: str) -> str | None:
    """The final answer of a response, or None when there is none (or it is over
    MAX_ANSWER_CHARS long)."""
    text = text[-MAX_RESPONSE_CHARS:]
    answer = _last_boxed(text)
    if answer is None:
        for pattern in (_ANSWER_IS, _HASHES):
            matches = pattern.findall(text)
            if matches:
                answer = matches[-1].splitlines()[0] if matches[-1] else ""
                break
    if answer is None or len(answer) > MAX_ANSWER_CHARS:
        return None
    return clean_answer(answer) or None
