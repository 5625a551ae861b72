"""A Function's ready endpoints and the requests waiting for one.

Forwarding picks the ready endpoint with the fewest requests in flight and never gives one
more than the Function's ``concurrency``. When none has room (cold, or all busy) the request
waits in a bounded FIFO queue and is handed an endpoint the moment one frees up or appears.

While requests wait, the pool probes the replicas that are starting (known to the source
but not ready yet) itself, every few milliseconds, and takes each one the moment it answers,
as Knative's activator does: waiting for the kubelet's next readiness probe and the
EndpointSlice update would add up to a second to every cold start. The kubelet's probes
still decide what the Service and other gateways see; a probed replica that later refuses
a connection is probed again before it takes another request.

With a warm pool (warm_start.py), a cold episode may also bring a specialized pool
replica: it joins the usable endpoints as a temporary one (``add_temporary``) and takes
requests, at the Function's concurrency, until the Function's own replicas are ready
(``set_ready`` with endpoints); then it takes no new request and ``on_retire`` is called
once its requests in flight have finished. A temporary one that refuses a connection is
dropped at once (``drop_temporary``): it is never probed back.

While the Function's status says its replicas cannot start (an image that cannot be pulled,
no node with room, ...) and none is ready, nothing would come for the queue: a request is
refused at once with the reason, and those already waiting are released with it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence

from hanshu_api.conditions import ReplicaFault
from hanshu_api.platform import Endpoint

# What a caller is told of each fault: what kind of trouble, never the details (image names,
# registries, node counts and memory limits are the Function owner's, in its status).
_FAULT_PHRASES = {
    "ImagePullFailed": "its image cannot be pulled",
    "Unschedulable": "no node has room for a replica",
    "CrashLoop": "its replicas keep crashing",
    "OutOfMemory": "its replicas run out of memory",
    "ContainerConfigError": "its container cannot be created",
    "RuntimeStartupFailed": "its code fails to start",
    "ProgressDeadlineExceeded": "no replica became ready in time",
    "ReplicaFailure": "the cluster refuses to create its replicas",
}


# Whether a starting replica answers its readiness path now (never raises).
Probe = Callable[[Endpoint], Awaitable[bool]]
# How often a starting replica is probed while requests wait for it: each probe is one small
# request on loopback or the pod network, and every millisecond between two of them is a
# millisecond added to the cold start (Knative's activator probes about as often).
PROBE_INTERVAL_SECONDS = 0.01


class QueueFull(Exception):
    pass


class NoEndpointInTime(Exception):
    pass


class ReplicasFailing(Exception):
    """No replica is ready and, as the Function's status says, none can start."""

    def __init__(self, fault: ReplicaFault) -> None:
        super().__init__(fault.reason)
        self.fault = fault

    def for_caller(self, function: str, details: bool = False) -> str:
        """What the caller is told; the fault's own message only with ``details`` (dev
        mode, where the caller is the Function's owner and there is no status to read)."""
        phrase = _FAULT_PHRASES.get(self.fault.reason, "its replicas cannot start")
        if details:
            return f"'{function}' cannot start a replica: {phrase}: {self.fault.message}"
        return (
            f"'{function}' cannot start a replica: {phrase} ({self.fault.reason}); the "
            "Function's status says why and how to fix it"
        )


class EndpointPool:
    def __init__(self, concurrency: int, queue_limit: int) -> None:
        self.concurrency = concurrency
        self.queue_limit = queue_limit
        self._in_flight: dict[Endpoint, int] = {}
        self._ready: list[Endpoint] = []
        self._waiters: collections.deque[asyncio.Future[Endpoint]] = collections.deque()
        self._penalized: dict[Endpoint, float] = {}
        self._fault: ReplicaFault | None = None
        # Replicas the source reports but not ready yet, those that answered our own probe,
        # and the probes running; what takes requests is the ready and the probed ones.
        self._starting: frozenset[Endpoint] = frozenset()
        # Replicas the source has called ready: if one turns not ready later, the kubelet's
        # probe has seen something ours may not (it stays out until the source says ready).
        self._was_ready: set[Endpoint] = set()
        self._probed: set[Endpoint] = set()
        self._probes: dict[Endpoint, asyncio.Task[None]] = {}
        self._usable: list[Endpoint] = []
        self.prober: Probe | None = None  # the gateway's, set before the first wait
        # Specialized pool replicas: those taking requests, and those that leave once
        # their requests in flight finish (then on_retire is called, once each).
        self._temporary: list[Endpoint] = []
        self._retiring: set[Endpoint] = set()
        self.on_retire: Callable[[Endpoint], None] | None = None
        # A cold episode asks the warm pool once: set when it does, cleared when the pool
        # has usable endpoints again (the next cold episode asks again).
        self.warm_asked = False

    @property
    def ready(self) -> Sequence[Endpoint]:
        """The replicas that take requests: ready, or starting and answering our probe."""
        return self._usable

    @property
    def starting(self) -> frozenset[Endpoint]:
        return self._starting

    @property
    def is_cold(self) -> bool:
        return not self._usable

    @property
    def queued(self) -> int:
        return len(self._waiters)

    @property
    def in_flight(self) -> int:
        return sum(self._in_flight.values())

    def _pick(self) -> Endpoint | None:
        now = time.monotonic()
        best: Endpoint | None = None
        best_load = self.concurrency
        for endpoint in self._usable:
            load = self._in_flight.get(endpoint, 0)
            if load < best_load and self._penalized.get(endpoint, 0.0) <= now:
                best, best_load = endpoint, load
        return best

    def _take(self, endpoint: Endpoint) -> Endpoint:
        self._in_flight[endpoint] = self._in_flight.get(endpoint, 0) + 1
        return endpoint

    def try_acquire(self) -> Endpoint | None:
        if self._waiters:  # first come, first served
            return None
        endpoint = self._pick()
        return None if endpoint is None else self._take(endpoint)

    async def acquire(self, within: float) -> Endpoint:
        endpoint = self.try_acquire()
        if endpoint is not None:
            return endpoint
        if self._fault is not None and not self._usable:
            raise ReplicasFailing(self._fault)
        if len(self._waiters) >= self.queue_limit:
            raise QueueFull
        waiter: asyncio.Future[Endpoint] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self._probe_starting()
        try:
            async with asyncio.timeout(within):
                return await waiter
        except (TimeoutError, asyncio.CancelledError) as error:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self.release(waiter.result())  # handed over just as we gave up
            else:
                waiter.cancel()
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            if isinstance(error, TimeoutError):
                raise NoEndpointInTime from None
            raise

    def release(self, endpoint: Endpoint) -> None:
        left = self._in_flight.get(endpoint, 1) - 1
        if left > 0:
            self._in_flight[endpoint] = left
        else:
            self._in_flight.pop(endpoint, None)
            if endpoint in self._retiring:
                self._retire(endpoint)
        self._dispatch()

    # -- temporary (specialized) endpoints ---------------------------------------------------

    @property
    def temporary(self) -> Sequence[Endpoint]:
        return self._temporary

    def add_temporary(self, endpoint: Endpoint) -> bool:
        """A specialized pool replica takes requests now; False (and it is retired at once)
        when the Function's own replicas are ready already or it is known."""
        if self._ready or endpoint in self._temporary or endpoint in self._ready:
            self._retire(endpoint)
            return False
        self._temporary.append(endpoint)
        self._refresh_usable()
        self._dispatch()
        return True

    def drop_temporary(self, endpoint: Endpoint) -> None:
        """A specialized replica that refused a connection: gone for good."""
        if endpoint in self._temporary:
            self._temporary.remove(endpoint)
            self._refresh_usable()
            self._retiring.add(endpoint)
            if not self._in_flight.get(endpoint):
                self._retire(endpoint)

    def is_temporary(self, endpoint: Endpoint) -> bool:
        return endpoint in self._temporary or endpoint in self._retiring

    def _retire_temporaries(self) -> None:
        """The Function's own replicas are ready: the specialized ones take no new request
        and leave once those in flight finish."""
        leaving, self._temporary = self._temporary, []
        for endpoint in leaving:
            self._retiring.add(endpoint)
            if not self._in_flight.get(endpoint):
                self._retire(endpoint)

    def _retire(self, endpoint: Endpoint) -> None:
        self._retiring.discard(endpoint)
        self._penalized.pop(endpoint, None)
        if self.on_retire is not None:
            self.on_retire(endpoint)

    def penalize(self, endpoint: Endpoint, seconds: float) -> None:
        """Skip an endpoint that refused a connection for a moment (it may be starting)."""
        if endpoint in self._temporary:
            self.drop_temporary(endpoint)  # a specialized replica does not come back
            return
        self._penalized[endpoint] = time.monotonic() + seconds
        if endpoint in self._probed:
            # Our probe's word only held until now: probe it again before it takes more.
            self._probed.discard(endpoint)
            self._refresh_usable()
            self._probe_starting()
        asyncio.get_running_loop().call_later(seconds, self._dispatch)

    def set_ready(self, endpoints: Sequence[Endpoint]) -> None:
        self._ready = sorted(set(endpoints))
        self._starting -= set(self._ready)
        # Once the kubelet has a word on a replica, its word holds.
        self._was_ready |= set(self._ready)
        self._probed -= set(self._ready)
        if self._ready and self._temporary:
            self._retire_temporaries()
        self._refresh_usable()
        self._dispatch()
        self._refuse_waiters()

    def set_starting(self, endpoints: Sequence[Endpoint]) -> None:
        """The replicas the source reports that are not ready yet and not terminating; only
        those it has never called ready are probed (new ones, not ones that turned unready)."""
        known = set(endpoints)
        self._was_ready &= known | set(self._ready)  # forget the ones that are gone
        self._starting = frozenset(known - set(self._ready) - self._was_ready)
        gone = self._probed - self._starting
        if gone:
            self._probed -= gone
            self._refresh_usable()
        for endpoint, probe in list(self._probes.items()):
            if endpoint not in self._starting:
                probe.cancel()
                del self._probes[endpoint]
        self._probe_starting()

    def close(self) -> None:
        """Stop probing (the Function is gone); its specialized replicas leave."""
        for probe in self._probes.values():
            probe.cancel()
        self._probes.clear()
        self._retire_temporaries()

    def _refresh_usable(self) -> None:
        self._usable = sorted({*self._ready, *self._probed, *self._temporary})
        if self._usable:
            self.warm_asked = False  # the cold episode is over

    def _waiting(self) -> bool:
        return any(not waiter.done() for waiter in self._waiters)

    def _probe_starting(self) -> None:
        """Probe every starting replica not probed yet, while requests wait."""
        if self.prober is None or not self._waiting():
            return
        for endpoint in self._starting - self._probed - self._probes.keys():
            self._probes[endpoint] = asyncio.get_running_loop().create_task(
                self._probe_until_ready(endpoint, self.prober)
            )

    async def _probe_until_ready(self, endpoint: Endpoint, probe: Probe) -> None:
        try:
            while endpoint in self._starting and self._waiting():
                if await probe(endpoint):
                    if endpoint in self._starting:  # not withdrawn while we asked
                        self._probed.add(endpoint)
                        self._penalized.pop(endpoint, None)
                        self._refresh_usable()
                        self._dispatch()
                    return
                await asyncio.sleep(PROBE_INTERVAL_SECONDS)
        finally:
            if self._probes.get(endpoint) is asyncio.current_task():
                del self._probes[endpoint]

    @property
    def fault(self) -> ReplicaFault | None:
        return self._fault

    def set_fault(self, fault: ReplicaFault | None) -> None:
        """What the Function's status says of its replicas; None once they can start."""
        self._fault = fault
        self._refuse_waiters()

    def _refuse_waiters(self) -> None:
        """Release the queue with the fault: no replica is ready and none is coming."""
        if self._fault is None or self._usable:
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(ReplicasFailing(self._fault))

    def _dispatch(self) -> None:
        while self._waiters:
            waiter = self._waiters[0]
            if waiter.done():
                self._waiters.popleft()
                continue
            endpoint = self._pick()
            if endpoint is None:
                return
            self._waiters.popleft()
            waiter.set_result(self._take(endpoint))
