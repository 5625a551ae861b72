"""The warm pool with plain processes: ``hanshu dev --warm-pool N`` and the integration
tests' implementation of the ``WarmPool`` seam (hanshu_api.platform).

Each namespace with Functions gets ``size`` runtime processes started in pool mode
(``HANSHU_POOL=1`` and the namespace's pool token): both ports listen, no code is loaded.
A cold request for an eligible Function (``pool_eligibility``, the rule the operator's
status condition states) takes one: it is handed the Function's code and environment with
the ``SpecializeRequest`` every warm pool sends (``specialize_env``, the one builder), and
answers once it serves. A replacement starts at once (the refill). The specialized process
serves that one Function until the gateway retires it, then it is stopped; it never goes
back to the pool. A process that fails to specialize (it died, refused, or its code does
not start) is stopped and the next one is tried; with none left the request takes the
ordinary path (the Function's own replica, started as always).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import secrets
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import aiohttp
from hanshu_api.models import FunctionSpec
from hanshu_api.platform import Endpoint, FunctionKey
from hanshu_api.warm_pool import (
    POOL_MODE_ENV,
    POOL_TOKEN_ENV,
    SPECIALIZE_PATH,
    PoolShape,
    SpecializeRequest,
    pool_eligibility,
    pool_token,
    specialize_env,
)

from .local_platform import free_port, start_runtime
from .replica_output import line_prefix, relay, uses_colour

log = logging.getLogger("hanshu.local.pool")
# What a local pool process "has": dev mode sets no limits on processes, so this is the
# bound a Function's resources are judged against, as a pool pod's are in a cluster.
LOCAL_POOL_RESOURCES: Mapping[str, Any] = {"limits": {"cpu": "2", "memory": "2Gi"}}
LOCAL_POOL_IMAGE = "hanshu-runtime (local process)"
# How often a starting pool process's /healthz is asked.
READY_POLL_SECONDS = 0.01
# A specialize request waits for the Function's initializer at most this long beyond the
# initializer's own timeout (the runtime enforces that one).
SPECIALIZE_MARGIN_SECONDS = 5.0
STOP_GRACE_SECONDS = 5.0
REFILL_DELAY_SECONDS = 0.25

SpecLookup = Callable[[FunctionKey], FunctionSpec | None]


@dataclass
class _PoolProcess:
    process: asyncio.subprocess.Process
    endpoint: Endpoint
    admin_port: int
    code_dir: Path
    namespace: str
    relaying: asyncio.Task[None] | None = None
    # When it became available (for the figures), and which Function it serves once taken.
    function: FunctionKey | None = None

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"


@dataclass
class _Namespace:
    available: collections.deque[_PoolProcess] = field(default_factory=collections.deque)
    starting: set[asyncio.Task[None]] = field(default_factory=set)


class LocalWarmPool:
    """A ``WarmPool`` of local runtime processes, ``size`` per namespace."""

    def __init__(
        self,
        size: int,
        specs: SpecLookup,
        *,
        default_resources: Mapping[str, Any] | None = None,
        internal_token: str | None = None,
        extra_env: Mapping[str, str] | None = None,
        workdir: Path | None = None,
        output: TextIO | None = None,
        resources: Mapping[str, Any] = LOCAL_POOL_RESOURCES,
    ) -> None:
        if size < 0:
            raise ValueError(f"the warm pool size must be 0 or more, not {size}")
        self.size = size
        self.shape = PoolShape(LOCAL_POOL_IMAGE, resources, size)
        self._specs = specs
        self._default_resources = dict(default_resources or {})
        # Dev mode has no internal token of its own: a fresh one keeps the pool's
        # specialize path as closed as in a cluster (a token per namespace, derived).
        self._internal_token = internal_token or secrets.token_hex(32)
        self._extra_env = dict(extra_env or {})
        self._workdir = workdir or Path(tempfile.mkdtemp(prefix="hanshu-pool-"))
        self._output = output or sys.stdout
        self._namespaces: dict[str, _Namespace] = {}
        self._serving: dict[Endpoint, _PoolProcess] = {}
        self._stopping: set[asyncio.Task[None]] = set()
        self._http: aiohttp.ClientSession | None = None
        self._closed = False
        self._started = 0
        # The eligibility reasons already logged, so a Function's is said once.
        self._told: set[tuple[FunctionKey, str]] = set()
        # Each specialization's time from the request sent to the 200 (for the bench).
        self.specialize_seconds: list[float] = []

    # -- the pool -------------------------------------------------------------------------

    def token(self, namespace: str) -> str:
        return pool_token(self._internal_token, namespace)

    async def start(self, namespaces: Iterable[str]) -> None:
        """Fill the pool of each namespace, and wait until every process listens."""
        self._http = aiohttp.ClientSession()
        for namespace in sorted(set(namespaces)):
            self._namespaces.setdefault(namespace, _Namespace())
            for _ in range(self.size):
                self._refill(namespace)
        await self.until_full()
        log.info(
            "warm pool: %d runtime process(es) waiting in each of namespace(s) %s",
            self.size,
            ", ".join(sorted(self._namespaces)) or "(none)",
        )

    async def until_full(self, within: float = 30.0) -> None:
        """Until every namespace's pool has ``size`` processes available."""
        deadline = time.monotonic() + within
        while any(len(ns.available) < self.size for ns in self._namespaces.values()):
            starting = [t for ns in self._namespaces.values() for t in ns.starting]
            if time.monotonic() > deadline or not starting:
                return
            await asyncio.wait(starting, timeout=deadline - time.monotonic())

    def available(self, namespace: str) -> list[Endpoint]:
        pool = self._namespaces.get(namespace)
        return [] if pool is None else [p.endpoint for p in pool.available]

    def available_pids(self, namespace: str) -> list[int]:
        pool = self._namespaces.get(namespace)
        return [] if pool is None else [p.process.pid for p in pool.available]

    def serving(self) -> dict[Endpoint, FunctionKey]:
        """The specialized processes and the Function each serves."""
        return {e: p.function for e, p in self._serving.items() if p.function is not None}

    def serving_pid(self, endpoint: Endpoint) -> int | None:
        found = self._serving.get(endpoint)
        return None if found is None else found.process.pid

    def _refill(self, namespace: str) -> None:
        if self._closed or self.size == 0:
            return
        pool = self._namespaces.setdefault(namespace, _Namespace())
        task = asyncio.get_running_loop().create_task(self._add_one(namespace))
        pool.starting.add(task)
        task.add_done_callback(pool.starting.discard)

    async def _add_one(self, namespace: str) -> None:
        try:
            started = await self._spawn(namespace)
        except Exception:  # never let a refill take the pool down: say so and go on
            log.exception("a warm pool process for namespace %s did not start", namespace)
            return
        if started is not None and not self._closed:
            self._namespaces[namespace].available.append(started)
        elif started is not None:
            await self._stop(started)

    async def _spawn(self, namespace: str) -> _PoolProcess | None:
        self._started += 1
        number = self._started
        port, admin_port = free_port(), free_port()
        code_dir = self._workdir / f"{namespace}.{number}"
        env = {
            **os.environ,
            **self._extra_env,
            POOL_MODE_ENV: "1",
            POOL_TOKEN_ENV: self.token(namespace),
            "HANSHU_HOST": "127.0.0.1",
            "HANSHU_PORT": str(port),
            "HANSHU_ADMIN_PORT": str(admin_port),
            "HANSHU_CODE_DIR": str(code_dir),
            "HANSHU_TERMINATION_LOG": str(self._workdir / f"{namespace}.{number}.log"),
        }
        process = await start_runtime(env)
        assert process.stdout is not None
        prefix = line_prefix(f"pool-{number}", 0, uses_colour(self._output))
        started = _PoolProcess(
            process, Endpoint("127.0.0.1", port), admin_port, code_dir, namespace
        )
        started.relaying = asyncio.create_task(relay(process.stdout, prefix, self._output))
        if await self._until_alive(started):
            return started
        await self._stop(started)
        return None

    async def _until_alive(self, pooled: _PoolProcess, within: float = 30.0) -> bool:
        assert self._http is not None
        exited = asyncio.ensure_future(pooled.process.wait())
        deadline = time.monotonic() + within
        try:
            while not exited.done() and time.monotonic() < deadline:
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with self._http.get(
                        f"{pooled.admin_url}/healthz", timeout=aiohttp.ClientTimeout(total=1)
                    ) as reply:
                        if reply.status == 200:
                            return True
                await asyncio.wait([exited], timeout=READY_POLL_SECONDS)
            return False
        finally:
            exited.cancel()

    # -- the WarmPool seam ----------------------------------------------------------------

    async def specialize(self, key: FunctionKey) -> Endpoint | None:
        try:
            return await self._specialize(key)
        except Exception:  # the seam never raises: the request takes the ordinary path
            log.exception("specializing a warm pool process for %s failed", key[1])
            return None

    async def _specialize(self, key: FunctionKey) -> Endpoint | None:
        namespace, name = key
        spec = self._specs(key)
        if spec is None or self._closed:
            return None
        eligibility = pool_eligibility(spec, self.shape, self._default_resources)
        if not eligibility.eligible:
            if (key, eligibility.reason) not in self._told:
                self._told.add((key, eligibility.reason))
                log.info(
                    "%s is not served from the warm pool (%s): %s",
                    name,
                    eligibility.reason,
                    eligibility.message,
                )
            return None
        assert spec.code.inline is not None  # eligible: inline code
        pool = self._namespaces.get(namespace)
        while pool is not None and pool.available:
            pooled = pool.available.popleft()
            try:
                if await self._hand_over(pooled, key, spec):
                    return pooled.endpoint
                await self._stop(pooled)  # useless now: never back to the pool
            finally:
                # The pool refills after each use, success or not, a moment after the
                # hand-over: a process starting takes a core for a few hundred ms, which
                # the specialized one needs for its first requests now (measured on 2
                # cores: tens of ms added). In a cluster the ReplicaSet's replacement
                # starts at once, on a node's own cores.
                asyncio.get_running_loop().call_later(REFILL_DELAY_SECONDS, self._refill, namespace)
        return None

    async def _hand_over(self, pooled: _PoolProcess, key: FunctionKey, spec: FunctionSpec) -> bool:
        """Specialize one process for ``key``; False when it did not answer 200."""
        namespace, name = key
        assert spec.code.inline is not None
        assert self._http is not None
        request = SpecializeRequest(
            namespace=namespace,
            function=name,
            # A manifest on disk was never applied: its Function's first generation.
            generation=1,
            env=specialize_env(
                name,
                namespace,
                spec,
                generation=None,
                default_resources=self._default_resources,
                code_dir=str(pooled.code_dir),
            ),
            files={file: str(text) for file, text in spec.code.inline.items()},
        )
        pooled.function = key
        self._serving[pooled.endpoint] = pooled
        timeout = float(spec.timeout_seconds) + SPECIALIZE_MARGIN_SECONDS
        sent = time.perf_counter()
        try:
            async with self._http.post(
                f"{pooled.admin_url}{SPECIALIZE_PATH}",
                data=request.encode(),
                headers={
                    "Authorization": f"Bearer {self.token(namespace)}",
                    "Content-Type": "application/json",
                },
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as reply:
                answer = await reply.text()
                if reply.status == 200:
                    self.specialize_seconds.append(time.perf_counter() - sent)
                    return True
                log.warning(
                    "warm pool process %s did not specialize for %s (%d): %s",
                    pooled.endpoint.url,
                    name,
                    reply.status,
                    answer[:500],
                )
        except (aiohttp.ClientError, TimeoutError) as failure:
            log.warning(
                "warm pool process %s did not specialize for %s: %s",
                pooled.endpoint.url,
                name,
                failure or type(failure).__name__,
            )
        self._serving.pop(pooled.endpoint, None)
        return False

    async def retire(self, key: FunctionKey, endpoint: Endpoint) -> None:
        pooled = self._serving.pop(endpoint, None)
        if pooled is not None:
            log.info("warm pool process %s leaves (%s)", endpoint.url, key[1])
            await self._stop(pooled)

    # -- stopping -------------------------------------------------------------------------

    async def _stop(self, pooled: _PoolProcess) -> None:
        """SIGTERM (its requests in flight have finished: the gateway waits for them),
        then SIGKILL if it lingers."""
        process = pooled.process
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), STOP_GRACE_SECONDS)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        if pooled.relaying is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(pooled.relaying, 1.0)

    async def close(self) -> None:
        self._closed = True
        for pool in self._namespaces.values():
            for task in list(pool.starting):
                with contextlib.suppress(Exception):
                    await task  # a process mid-start is stopped by _add_one
        stopping = [p for ns in self._namespaces.values() for p in ns.available]
        stopping += list(self._serving.values())
        for pool in self._namespaces.values():
            pool.available.clear()
        self._serving.clear()
        await asyncio.gather(*(self._stop(p) for p in stopping), return_exceptions=True)
        if self._http is not None:
            await self._http.close()
