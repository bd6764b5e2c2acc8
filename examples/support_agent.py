"""The agent under test named by examples/suite.yaml: a small rule-based support bot.

A real suite names your own factory (``package.module:factory``) that returns your
``scenario.AgentAdapter``. This one needs no model, so the example runs offline; the user
simulator and judge talk to the built-in mock model (``scenario run examples/suite.yaml --mock``).
"""

from __future__ import annotations

import scenario

_REPLIES = {
    "friendly": {
        "refund": "I'm so sorry about that! I've started a refund to your original payment method; you'll get an email shortly.",
        "late": "Sorry your parcel is late! Could you share your order number so I can track it for you?",
        "other": "Happy to help! Could you tell me a bit more, and your order number if you have one?",
    },
    "terse": {
        "refund": "Refund started.",
        "late": "Order number?",
        "other": "Details?",
    },
}


class SupportAgent(scenario.AgentAdapter):
    """Answers refund and delivery questions with canned replies in the chosen tone."""

    def __init__(self, tone: str = "friendly"):
        if tone not in _REPLIES:
            raise ValueError(f"SupportAgent(tone={tone!r}): use one of {', '.join(_REPLIES)}")
        self.replies = _REPLIES[tone]

    def call(self, input: scenario.AgentInput) -> str:
        question = input.last_new_user_message_str().lower()
        if any(word in question for word in ("refund", "broken", "damaged", "money back")):
            return self.replies["refund"]
        if any(word in question for word in ("late", "where", "parcel", "delivery", "track")):
            return self.replies["late"]
        return self.replies["other"]


def make_agent(tone: str = "friendly") -> SupportAgent:
    """Factory named in the suite file; ``args:`` in the suite become its keyword arguments."""
    return SupportAgent(tone=tone)
