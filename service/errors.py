"""One error hierarchy for the service, with no HTTP in it; the API maps it to status codes."""

from __future__ import annotations

from typing import Any


class HypevolveError(Exception):
    """Base of every error the service raises on purpose."""


class InvalidRequest(HypevolveError):
    """A request field has a value the service will not act on."""

    def __init__(self, field: str, value: Any, reason: str) -> None:
        self.field, self.value, self.reason = field, value, reason
        super().__init__(f"{field}: {reason} (got {value!r})")


class StudyNotFound(HypevolveError):
    def __init__(self, study_id: int) -> None:
        self.study_id = study_id
        super().__init__(f"study {study_id} does not exist")


class NotReady(HypevolveError):
    """The thing asked for exists but has nothing to give yet (no completed trial, say)."""


class Conflict(HypevolveError):
    """The request clashes with the current state (a taken name, a study already finished)."""
