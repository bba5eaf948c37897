"""The teacher prompt: one question per rationale, each answered by one sentence with a fixed opening.

Asking a small model for both sentences at once ("1. ... 2. ...") mostly fails: measured on SmolLM2-135M it
ignores the format. One question per rationale, with the assistant turn prefilled by the sentence opening
(HF backend) or the opening requested in the question (endpoints cannot prefill), keeps it on format.
Bump ``PROMPT_VERSION`` whenever the wording changes: it is part of a run's fingerprint and provenance.
"""

from __future__ import annotations

import enum

PROMPT_VERSION = "rdrec-rationale-v1"


class RationaleField(str, enum.Enum):
    """The two rationales RDRec distils from a review; the value is the output column name."""

    USER_PREFERENCE = "user_preference"
    ITEM_ATTRIBUTE = "item_attribute"


#: The sentence each answer must start with (prefilled in the assistant turn by the HF backend).
ANSWER_OPENINGS = {
    RationaleField.USER_PREFERENCE: "The user prefers",
    RationaleField.ITEM_ATTRIBUTE: "The item's attributes are",
}

_QUESTIONS = {
    RationaleField.USER_PREFERENCE: "In one short sentence, what does this customer prefer?",
    RationaleField.ITEM_ATTRIBUTE: "In one short sentence, what are the attributes of the product?",
}

_TEMPLATE = "Here is a product review written by a customer.\n\nReview: {review}\n\n{question}"
# Endpoints cannot prefill the answer, so they are asked for the opening. Measured on SmolLM2-135M, adding
# this request to a prefilled prompt makes it stop at once ("The user prefers."), so the HF backend omits it.
_OPENING_REQUEST = ' Start your answer with "{opening}".'


def build_messages(review: str, field: RationaleField, request_opening: bool) -> list[dict[str, str]]:
    """Chat messages asking the teacher for one rationale of ``review``.

    ``request_opening``: ask in words for the answer to start with the opening (for teachers that cannot
    have their answer prefilled).
    """
    content = _TEMPLATE.format(review=review, question=_QUESTIONS[field])
    if request_opening:
        content += _OPENING_REQUEST.format(opening=ANSWER_OPENINGS[field])
    return [{"role": "user", "content": content}]


def prompt_text_for_card() -> dict[str, str]:
    """The prompts with a placeholder review, as written into the dataset card."""
    return {
        f"{field.value} ({'endpoint' if request_opening else 'prefilled'})":
            build_messages("{review}", field, request_opening)[0]["content"]
        for field in RationaleField for request_opening in (False, True)
    }
