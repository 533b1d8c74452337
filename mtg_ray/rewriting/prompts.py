"""Prompt templates: the plain problem prompt and the guided ("digest-and-retell") prompt.

The plain prompt is what every training record pairs with its response, whatever the source.
The guided prompt adds the expert solution as a reference, only at generation time (paper,
stage 2): the model is asked to understand it, then solve in its own words without copying or
mentioning it.
"""

from dataclasses import dataclass
from typing import Any

# Qwen2.5-Math evaluation toolkit, prompt type "qwen-boxed" (the paper's evaluation prompt).
QWEN_BOXED_SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."

GUIDED_INSTRUCTION = (
    "Below is a problem and a reference solution written by someone else. First read the "
    "reference carefully and make sure you understand every step. Then solve the problem "
    "yourself, in your own words and your own style, reasoning step by step. Do not copy the "
    "reference and do not mention that a reference exists. Put your final answer within "
    "\\boxed{}."
)


@dataclass(frozen=True)
class PromptTemplate:
    """A chat-like template: `plain` takes {question}; `guided` takes {question} and {reference}.
    `stop`: the token that ends the model's turn in this format (a chat format's end of turn;
    None: the tokenizer's EOS); see `end_token_id`."""

    name: str
    plain: str
    guided: str
    stop: str | None = None

    def format(self, question: str) -> str:
        return self.plain.format(question=question)

    def format_guided(self, question: str, reference: str) -> str:
        return self.guided.format(question=question, reference=reference)


def _qwen_chat(system: str, user: str) -> str:
    return (
        f"<|im_start|>system\n{system}<|im_end|>\n"
        f"<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"
    )


def _escape(text: str) -> str:
    """Escape braces so a literal survives `str.format` (the system prompt has `\\boxed{}`)."""
    return text.replace("{", "{{").replace("}", "}}")


TEMPLATES: dict[str, PromptTemplate] = {
    "qwen-boxed": PromptTemplate(
        name="qwen-boxed",
        plain=_qwen_chat(_escape(QWEN_BOXED_SYSTEM), "{question}"),
        guided=_qwen_chat(
            _escape(QWEN_BOXED_SYSTEM),
            _escape(GUIDED_INSTRUCTION)
            + "\n\n### Problem\n{question}\n\n### Reference solution\n{reference}\n\n"
            "### Your solution",
        ),
        stop="<|im_end|>",
    ),
    # For base models without chat tokens (the tiny world): plain text markers.
    "plain": PromptTemplate(
        name="plain",
        plain="Problem: {question}\nSolution:",
        guided="Problem: {question}\nReference: {reference}\nSolution:",
    ),
}


def end_token_id(template: PromptTemplate, tokenizer: Any) -> int:
    """The token a response in `template`'s format ends with: its `stop` token, else the
    tokenizer's EOS. Expert rows end with it and every sample stops on it (beside the
    checkpoint's own EOS ids), so all sources end a turn alike."""
    if template.stop is None:
        return tokenizer.eos_token_id
    ids = tokenizer.encode(template.stop, add_special_tokens=False)
    if len(ids) != 1:
        raise ValueError(
            f"prompt template {template.name!r} ends a turn with {template.stop!r}, which this "
            f"tokenizer does not hold as one token (it encodes to {ids})"
        )
    return ids[0]


def get_template(name: str) -> PromptTemplate:
    """The template registered under `name`; a clear error lists the known ones."""
    try:
        return TEMPLATES[name]
    except KeyError:
        raise KeyError(f"unknown prompt template {name!r}; known: {sorted(TEMPLATES)}") from None
