"""The gateway's own readiness probe of a starting replica, on its function port.

``GET /_hanshu/ready`` is the runtime's: it answers 200 only while the instance takes
requests (the same phase its admin ``/readyz`` reports to the kubelet) and never reaches the
function. Public routes cannot reach it (``target.py`` keeps ``/_hanshu/`` for replicas).

Each probe asks for its connection to be closed after the answer, so the first request a
probed replica takes goes over a connection of its own. On a kept-alive connection, a
close without a reply is taken for an idle close and the request is sent again: a first
request that kills the replica would be run again on the next one (a 503 at the end of
the cold-start timeout, crashing each replica that comes), instead of the 502 it is.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from hanshu_api.gateway_paths import REPLICA_READY_PATH
from hanshu_api.platform import Endpoint, EndpointListener, FunctionKey

from .catalog import Catalog
from .pool import Probe
from .upstream import MalformedReply, UpstreamClosed, UpstreamPool

# A pod IP that drops packets (no route yet) would hold a connect for minutes: one probe
# is given up after this, and the next one follows.
PROBE_TIMEOUT_SECONDS = 0.25
_CLOSE_AFTER = (("Connection", "close"),)


def replica_prober(upstream: UpstreamPool, timeout: float = PROBE_TIMEOUT_SECONDS) -> Probe:
    async def probe(endpoint: Endpoint) -> bool:
        try:
            async with asyncio.timeout(timeout):
                reply = await upstream.request(
                    endpoint, "GET", REPLICA_READY_PATH, _CLOSE_AFTER, b"", timeout
                )
        except (OSError, UpstreamClosed, MalformedReply, TimeoutError):
            return False  # refused, reset or silent: not taking requests yet
        return reply.status == 200

    return probe


def starting_listener(catalog: Catalog) -> EndpointListener:
    """For a source's not-ready replicas (the local platform's ``listen_starting``): they go
    to each Function's pool to be probed, never to its ready set."""

    def listener(key: FunctionKey, endpoints: Sequence[Endpoint]) -> None:
        entry = catalog.functions.get(key)
        if entry is not None:
            entry.pool.set_starting(endpoints)

    return listener
