"""Leader election with a ``coordination.k8s.io/v1`` Lease, as client-go's leaderelection.

The leader renews the Lease every ``renew_seconds``; a standby that has seen the same
record (holder and renewTime) for ``duration_seconds`` of its own clock takes the Lease
over. Expiry is judged on the standby's clock from when it last saw the record change,
never by comparing the leader's timestamps with its own: nodes' clocks may disagree. A
leader that cannot renew for ``duration_seconds`` stops deciding before a standby may
start (it stops a renew interval earlier). Writes are merge patches carrying the
resourceVersion read: of two standbys racing, the API server lets one win (409 for the
other). ``holderIdentity`` is ``<pod>@<url>``: who leads and where its reports go.

Cost: one GET and at most one PATCH of one small object per ``renew_seconds`` per replica.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from hanshu_api.kube import ApiError, KubeClient, path_for

log = logging.getLogger("hanshu.autoscaler.lease")

COORDINATION = "coordination.k8s.io/v1"


def identity(pod: str, url: str) -> str:
    return f"{pod}@{url}"


def url_of(holder: str) -> str | None:
    """Where the holder takes reports: the part after the first '@'."""
    _pod, at, url = holder.partition("@")
    return url if at and url else None


def microtime(moment: float) -> str:
    """A Lease's MicroTime (RFC 3339, microseconds, UTC)."""
    stamp = datetime.datetime.fromtimestamp(moment, datetime.UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True, slots=True)
class Record:
    """What a standby compares to know whether the leader is still renewing."""

    holder: str
    renewed: str

    @classmethod
    def of(cls, lease: Mapping[str, Any]) -> Record:
        spec = lease.get("spec") or {}
        return cls(str(spec.get("holderIdentity") or ""), str(spec.get("renewTime") or ""))


def expired(seen_since: float, now: float, duration: float) -> bool:
    """A record unchanged for a whole lease duration (on our clock) is the leader's death."""
    return now - seen_since >= duration


class LeaseElector:
    """Keeps this replica's side of one Lease; ``is_leader`` and ``leader_url`` are the
    service's ``Leadership``."""

    def __init__(
        self,
        kube: KubeClient,
        namespace: str,
        name: str,
        me: str,
        *,
        duration_seconds: float = 4.0,
        renew_seconds: float = 1.0,
        on_elected: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.kube = kube
        self.path = path_for(COORDINATION, "leases", namespace, name)
        self.namespace, self.name, self.me = namespace, name, me
        self.duration = duration_seconds
        self.renew_seconds = renew_seconds
        self.on_elected = on_elected
        self.clock = clock
        self.holder = ""
        self._leading_until = 0.0  # on our clock: the leader stops deciding then
        self._record: Record | None = None
        self._seen_since = 0.0

    # -- Leadership -----------------------------------------------------------------------

    def is_leader(self) -> bool:
        return self.holder == self.me and self.clock() < self._leading_until

    def leader_url(self) -> str | None:
        return None if self.holder in ("", self.me) else url_of(self.holder)

    # -- the loop -------------------------------------------------------------------------

    async def run(self) -> None:
        while True:
            try:
                await self.step()
            except Exception as error:  # the API is down or slow: try again next round
                log.warning("the Lease %s/%s: %s", self.namespace, self.name, error)
            await asyncio.sleep(self.renew_seconds)

    async def step(self) -> None:
        lease = await self.kube.get(self.path)
        now = self.clock()
        if lease is None:
            await self._write(None, 0)
            return
        record = Record.of(lease)
        if record != self._record:
            self._record, self._seen_since = record, now
        if record.holder == self.me:
            await self._write(lease, _transitions(lease))
        elif not record.holder or expired(self._seen_since, now, self.duration):
            await self._write(lease, _transitions(lease) + 1)
        else:
            self.holder = record.holder

    async def _write(self, lease: Mapping[str, Any] | None, transitions: int) -> None:
        started = self.clock()
        wall = time.time()
        was_leader = self.is_leader()
        spec = dict((lease or {}).get("spec") or {})
        if spec.get("holderIdentity") != self.me:
            spec["acquireTime"] = microtime(wall)
        spec.update(
            holderIdentity=self.me,
            leaseDurationSeconds=max(1, round(self.duration)),
            renewTime=microtime(wall),
            leaseTransitions=transitions,
        )
        metadata: dict[str, Any] = {"name": self.name, "namespace": self.namespace}
        body = {"apiVersion": COORDINATION, "kind": "Lease", "metadata": metadata, "spec": spec}
        try:
            if lease is None:
                await self.kube.create(path_for(COORDINATION, "leases", self.namespace), body)
            else:
                metadata["resourceVersion"] = (lease.get("metadata") or {}).get("resourceVersion")
                await self.kube.merge_patch(self.path, body)
        except ApiError as error:
            if error.status not in (HTTPStatus.CONFLICT, HTTPStatus.UNPROCESSABLE_ENTITY):
                raise
            return  # another replica wrote first: read again next round
        self.holder = self.me
        # A renew interval of margin: the leader stops before any standby may start.
        self._leading_until = started + self.duration - self.renew_seconds
        if not was_leader:
            log.info("leading: the Lease %s/%s is %s's", self.namespace, self.name, self.me)
            self.on_elected()

    async def release(self) -> None:
        """On a clean stop: give the Lease up, so a standby takes it at its next look."""
        if not self.is_leader():
            return
        self._leading_until = 0.0
        lease = await self.kube.get(self.path)
        if lease is None or Record.of(lease).holder != self.me:
            return
        version = (lease.get("metadata") or {}).get("resourceVersion")
        await self.kube.merge_patch(
            self.path, {"metadata": {"resourceVersion": version}, "spec": {"holderIdentity": ""}}
        )


def _transitions(lease: Mapping[str, Any]) -> int:
    return int((lease.get("spec") or {}).get("leaseTransitions") or 0)
