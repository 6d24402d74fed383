"""User-facing progress statuses (apollo #452): a fixed first status, then per-mode pools.

Pools are picked from by a seeded :class:`random.Random`, so a replay is reproducible.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

THINKING = "Thinking..."
FORMATTING_WORKFLOW = "Formatting workflow..."

REVIEWING_CODE = (
    "Reviewing the code...",
    "Reading the current code...",
    "Looking over the job code...",
    "Checking the existing code...",
    "Reviewing what you have so far...",
)
NEW_CODE = (
    "Preparing to write code...",
    "Getting ready to write code...",
    "Setting things up...",
    "Getting started on the code...",
    "Preparing the job code...",
)
WRITING_CODE = (
    "Writing code...",
    "Drafting the changes...",
    "Editing the code...",
)
REVIEWING_WORKFLOW = (
    "Reviewing the workflow...",
    "Reading your workflow...",
    "Looking over the current setup...",
    "Reviewing the current steps...",
    "Analyzing the workflow...",
    "Looking at what you have so far...",
)
NEW_WORKFLOW = (
    "Mapping out the steps...",
    "Gathering requirements...",
    "Thinking about the design...",
    "Designing the workflow...",
    "Planning the workflow...",
    "Working out the structure...",
)
CHAT = (
    "Working out the details...",
    "Figuring out the approach...",
    "Putting an answer together...",
)


class StatusPicker:
    """Picks one message from a pool; the same seed gives the same sequence of picks."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)

    def pick(self, pool: Sequence[str]) -> str:
        return self._rng.choice(pool)


def opening_pool(mode: str, has_context: bool) -> Sequence[str]:
    """The pool of the status that follows "Thinking...": reviewing existing work or new."""
    if mode == "job_code":
        return REVIEWING_CODE if has_context else NEW_CODE
    if mode == "workflow":
        return REVIEWING_WORKFLOW if has_context else NEW_WORKFLOW
    return CHAT
