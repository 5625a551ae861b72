"""The platform seams with plain processes: each replica is ``python -m hanshu_runtime`` on
a loopback port. Backs the integration tests and the cluster-less developer mode.

Scaling up starts processes and reports each as an endpoint once its ``/readyz`` answers;
a process that is still starting is reported to ``listen_starting`` listeners at once (as
a not-ready endpoint in an EndpointSlice), so a gateway may probe it itself. Scaling down
withdraws the endpoint first, then sends SIGTERM so the runtime drains its in-flight
requests (as kubelet does after the endpoint is removed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from hanshu_api.models import FunctionSpec
from hanshu_api.platform import Endpoint, EndpointListener, FunctionKey

log = logging.getLogger("hanshu.local")
_READY_POLL_SECONDS = 0.01


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class _Replica:
    process: asyncio.subprocess.Process
    endpoint: Endpoint
    admin_port: int
    ready: bool = False
    watcher: asyncio.Task[None] | None = None


@dataclass
class _LocalFunction:
    spec: FunctionSpec
    code_dir: Path
    replicas: list[_Replica] = field(default_factory=list)
    wanted: int = 0


class LocalPlatform:
    """Implements EndpointSource and ReplicaScaler with local runtime processes."""

    def __init__(
        self, *, extra_env: Mapping[str, str] | None = None, workdir: Path | None = None
    ) -> None:
        self._functions: dict[FunctionKey, _LocalFunction] = {}
        self._listeners: list[EndpointListener] = []
        self._starting_listeners: list[EndpointListener] = []
        self._extra_env = dict(extra_env or {})
        self._workdir = workdir or Path(tempfile.mkdtemp(prefix="hanshu-local-"))
        self._lock = asyncio.Lock()
        self._http: aiohttp.ClientSession | None = None
        self._draining: set[asyncio.subprocess.Process] = set()

    def add_function(
        self, key: FunctionKey, spec: FunctionSpec, code_dir: Path | None = None
    ) -> None:
        if code_dir is None:
            if spec.code.inline is None:
                raise ValueError(
                    f"Function {key[1]}: the local platform runs inline code only "
                    "(or pass the folder holding the code)"
                )
            code_dir = self._workdir / key[0] / key[1]
            code_dir.mkdir(parents=True, exist_ok=True)
            for name, content in spec.code.inline.items():
                (code_dir / name).write_text(content)
        self._functions[key] = _LocalFunction(spec, code_dir)

    def listen(self, listener: EndpointListener) -> None:
        self._listeners.append(listener)

    def listen_starting(self, listener: EndpointListener) -> None:
        """Told the replicas started but not ready yet (never one that is stopping)."""
        self._starting_listeners.append(listener)

    def current_replicas(self, key: FunctionKey) -> int | None:
        function = self._functions.get(key)
        return None if function is None else function.wanted

    def _publish(self, key: FunctionKey) -> None:
        replicas = self._functions[key].replicas
        ready = [r.endpoint for r in replicas if r.ready]
        for listener in self._listeners:
            listener(key, ready)
        starting = [r.endpoint for r in replicas if not r.ready]
        for listener in self._starting_listeners:
            listener(key, starting)

    async def set_replicas(self, key: FunctionKey, replicas: int) -> None:
        async with self._lock:
            function = self._functions[key]
            function.wanted = replicas
            started = len(function.replicas) < replicas
            while len(function.replicas) < replicas:
                function.replicas.append(await self._start(key, function))
            if started and self._starting_listeners:
                self._publish(key)
            stopping = function.replicas[replicas:]
            del function.replicas[replicas:]
            if stopping:
                self._publish(key)  # withdraw the endpoints before the processes drain
            for replica in stopping:
                await self._stop(replica)

    async def _start(self, key: FunctionKey, function: _LocalFunction) -> _Replica:
        spec = function.spec
        port, admin_port = free_port(), free_port()
        env = {
            **os.environ,
            **{e["name"]: str(e.get("value", "")) for e in spec.env if "value" in e},
            **self._extra_env,
            "HANSHU_HANDLER": spec.handler,
            "HANSHU_HANDLER_TYPE": spec.handler_type,
            "HANSHU_CODE_DIR": str(function.code_dir),
            "HANSHU_TIMEOUT": str(spec.timeout_seconds),
            "HANSHU_CONCURRENCY": str(spec.concurrency),
            "HANSHU_HOST": "127.0.0.1",
            "HANSHU_PORT": str(port),
            "HANSHU_ADMIN_PORT": str(admin_port),
            "HANSHU_FUNCTION_NAME": key[1],
            "HANSHU_NAMESPACE": key[0],  # as the downward API gives it in a cluster
            "HANSHU_MEMORY_MB": str(spec.memory_mb),
            "HANSHU_DRAIN_SECONDS": str(spec.timeout_seconds),
            "HANSHU_TERMINATION_LOG": os.devnull,
        }
        if spec.initializer:
            env["HANSHU_INITIALIZER"] = spec.initializer
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "hanshu_runtime",
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=None,
        )
        replica = _Replica(process, Endpoint("127.0.0.1", port), admin_port)
        replica.watcher = asyncio.create_task(self._watch_ready(key, replica))
        log.info("started replica", extra={"function": key[1], "pid": process.pid, "port": port})
        return replica

    async def _watch_ready(self, key: FunctionKey, replica: _Replica) -> None:
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1))
        url = f"http://127.0.0.1:{replica.admin_port}/readyz"
        while replica.process.returncode is None and not replica.ready:
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with self._http.get(url) as reply:
                    if reply.status == 200:
                        replica.ready = True
                        self._publish(key)
                        break
            await asyncio.sleep(_READY_POLL_SECONDS)
        code = await replica.process.wait()
        function = self._functions[key]
        if replica not in function.replicas:
            return  # stopped on purpose
        # Died by itself: withdraw it and start a replacement, as a ReplicaSet would, but
        # not for a replica that never became ready (its start-up fault is on stderr).
        log.error("replica exited with code %s", code, extra={"function": key[1]})
        async with self._lock:
            if replica in function.replicas:
                function.replicas.remove(replica)
                self._publish(key)
                if replica.ready:
                    function.replicas.append(await self._start(key, function))
                    self._publish(key)

    async def _stop(self, replica: _Replica) -> None:
        if replica.watcher is not None:
            replica.watcher.cancel()
        if replica.process.returncode is None:
            replica.process.send_signal(signal.SIGTERM)
            # Draining can take as long as the longest request: do not hold up scaling.
            self._draining.add(replica.process)
            waiting = asyncio.get_running_loop().create_task(replica.process.wait())
            waiting.add_done_callback(lambda _: self._draining.discard(replica.process))

    async def close(self, drain_seconds: float = 10.0) -> None:
        for key in list(self._functions):
            await self.set_replicas(key, 0)
        draining = list(self._draining)
        if draining:
            await asyncio.wait(
                [asyncio.ensure_future(p.wait()) for p in draining], timeout=drain_seconds
            )
            for process in draining:
                if process.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()
        if self._http is not None:
            await self._http.close()
