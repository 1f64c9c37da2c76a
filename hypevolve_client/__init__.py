"""A small typed client for the hypevolve REST API: ``Client(url).start_study("shapes/data.yaml", epochs=3)``.

Imports httpx and the standard library only (no server stack, torch or Ray), so it runs anywhere
the API can be reached: a notebook, a CI job, another machine.
"""

from __future__ import annotations

from hypevolve_client.client import DEFAULT_URL, Client, ClientError, ServiceUnreachable
from hypevolve_client.models import (
    Best,
    Confirmation,
    ConfirmedEntry,
    ImportResult,
    PlannedEpochs,
    Study,
    Trial,
    VsBaseline,
)

__all__ = [
    "DEFAULT_URL",
    "Best",
    "Client",
    "ClientError",
    "Confirmation",
    "ConfirmedEntry",
    "ImportResult",
    "PlannedEpochs",
    "ServiceUnreachable",
    "Study",
    "Trial",
    "VsBaseline",
]
