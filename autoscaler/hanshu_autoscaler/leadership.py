"""Who decides: the seam between the autoscaler and how its replicas agree on a leader.

In a cluster a Lease elects one of two replicas (``lease``); one process alone (dev mode,
tests) is the leader by itself (``AlwaysLeader``)."""

from __future__ import annotations

from typing import Protocol


class Leadership(Protocol):
    def is_leader(self) -> bool:
        """Whether this replica may decide and write now."""
        ...

    def leader_url(self) -> str | None:
        """Where the leader takes reports; None while nobody (else) leads."""
        ...


class AlwaysLeader:
    """One process, no rival: always the leader."""

    def is_leader(self) -> bool:
        return True

    def leader_url(self) -> str | None:
        return None
