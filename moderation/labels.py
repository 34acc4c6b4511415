"""The six Jigsaw-2018 label names every scorer, policy and artifact agrees on."""

from __future__ import annotations

from typing import Final

LABELS: Final[tuple[str, ...]] = (
    "toxic",
    "severe_toxic",
    "obscene",
    "threat",
    "insult",
    "identity_hate",
)

#: Human wording for member notices and the dashboard.
LABEL_DESCRIPTIONS: Final[dict[str, str]] = {
    "toxic": "toxic or abusive language",
    "severe_toxic": "severely toxic language",
    "obscene": "obscene language",
    "threat": "threats of harm",
    "insult": "insults",
    "identity_hate": "hate against a group or identity",
}
