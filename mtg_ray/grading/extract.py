"""Final-answer extraction from a whole model response.

Order of preference, as in the Qwen2.5-Math toolkit: the last `\\boxed{...}` (or `\\fbox{...}`,
or `\\boxed 5`), then "the (final) answer is ...", then GSM8K's `#### ...`. Braces are matched by
a linear scan, so deep nesting costs nothing and unbalanced input yields None.
"""

import re

_BOX = re.compile(r"\\(?:boxed|fbox)")
_ANSWER_IS = re.compile(r"(?:final answer|the answer) is[:\s]*(.+)", re.IGNORECASE)
_HASHES = re.compile(r"####\s*(.+)")


def _matched_group(text: str, open_at: int) -> str | None:
    """Content of the brace group opening at `open_at`, or None if it never closes.

    Escaped braces (`\\{`, `\\}`, as in set notation) do not count.
    """
    depth, i = 0, open_at
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return text[open_at + 1 : i]
        i += 1
    return None


def _last_boxed(text: str) -> str | None:
    for match in reversed(list(_BOX.finditer(text))):
        rest = match.end()
        while rest < len(text) and text[rest] == " ":
            rest += 1
        if rest < len(text) and text[rest] == "{":
            content = _matched_group(text, rest)
            if content is not None:
                return content
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


def extract_answer(text: str) -> str | None:
    """The final answer of a response, or None when there is none."""
    boxed = _last_boxed(text)
    if boxed is not None:
        return clean_answer(boxed) or None
    for pattern in (_ANSWER_IS, _HASHES):
        matches = pattern.findall(text)
        if matches:
            return clean_answer(matches[-1].splitlines()[0] if matches[-1] else "") or None
    return None
