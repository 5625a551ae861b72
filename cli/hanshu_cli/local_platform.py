"""The platform seams with plain processes: each replica is ``python -m hanshu_runtime`` on
a loopback port. Backs the integration tests and the cluster-less developer mode.

Scaling up starts processes and reports each as an endpoint once its ``/readyz`` answers;
a process that is still starting is reported to ``listen_starting`` listeners at once (as
a not-ready endpoint in an EndpointSlice), so a gateway may probe it itself. Scaling down
withdraws the endpoint first, then sends SIGTERM so the runtime drains its in-flight
requests (as kubelet does after the endpoint is removed).

A replica that dies by itself is restarted on its own address, as the kubelet restarts a
pod's container, and, as a gateway in a cluster treats a pod the kubelet has once called
ready, it is never reported as starting again: only a replica's first start is probed.
Two exits are not restarted: one with a start-up fault (the runtime's one line in its
termination log), which ``listen_faults`` listeners are told (as a Function's status tells
a gateway in a cluster) until a replica of the Function is ready again; and one with code
0, which only a replica told to stop makes (a signal to the whole process group, as the
terminal sends on Ctrl-C).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import signal
import socket
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import aiohttp
from hanshu_api.conditions import ReplicaFault
from hanshu_api.function_contract import function_env, user_env
from hanshu_api.models import FunctionSpec
from hanshu_api.platform import Endpoint, EndpointListener, FunctionKey

from .local_servers import ended_with_parent
from .replica_output import line_prefix, relay, uses_colour

log = logging.getLogger("hanshu.local")
# How often a starting replica's /readyz is asked (read at each poll: tests slow it down).
READY_POLL_SECONDS = 0.01
# Restarts in a row of a replica that does not become ready wait longer each time, as the
# kubelet's crash-loop back-off does (the first restart is at once).
RESTART_BACKOFF_SECONDS = 1.0
RESTART_BACKOFF_MAX_SECONDS = 30.0
# The reason a replica that cannot start is reported with: the operator's for the same.
STARTUP_FAULT_REASON = "RuntimeStartupFailed"
# Told a Function's start-up fault (None once a replica of it is ready again).
FaultListener = Callable[[FunctionKey, ReplicaFault | None], None]


def _ephemeral_ports() -> range:
    """The kernel's range for outgoing connections' source ports (Linux: 32768-60999)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return range(int(low), int(high) + 1)
    except (OSError, ValueError):
        return range(32768, 61000)


# Listening ports are picked below the ephemeral range: a port the kernel picks (bind to 0)
# and we release is soon some outgoing connection's source port, and the server meant to
# listen there finds it taken (seen with four test workers making thousands of calls).
_LISTEN_PORTS = range(20000, min(_ephemeral_ports().start, 32768))


# What the runtime's start-up fault says when its port is taken (the OS's strerror).
PORT_TAKEN = "address already in use"
MAX_PORT_RETRIES = 3


async def start_runtime(env: Mapping[str, str]) -> asyncio.subprocess.Process:
    """A runtime process, a replica or a warm pool one: its output piped (to be relayed
    under a name), and killed with hanshu dev if that is killed outright."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hanshu_runtime",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        preexec_fn=ended_with_parent(),
    )


def free_port() -> int:
    """A loopback port nothing listens on now, chosen at random among the listening ports
    so that processes picking at once rarely pick the same."""
    for _ in range(64 if _LISTEN_PORTS else 0):
        port = random.choice(_LISTEN_PORTS)  # noqa: S311 - a port, not a secret
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue  # in use (or lingering): another
            return port
    with socket.socket() as sock:  # no room below the ephemeral range: the kernel's pick
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def replica_env(
    key: FunctionKey,
    spec: FunctionSpec,
    *,
    inherited: Mapping[str, str],
    extra: Mapping[str, str],
    default_resources: Mapping[str, Any],
    code_dir: Path,
    port: int,
    admin_port: int,
    termination_log: Path,
    version_of: tuple[str, int] | None = None,
) -> dict[str, str]:
    """A replica process's environment: what it inherits (a pod's image env), the
    Function's own values, the local platform's ``extra`` (the local S3's credentials),
    then the function contract, which nothing before it overrides (as in a cluster).
    ``version_of``: the Function and number of the published version it runs (its key
    is then the version's key; the replica is told the Function's name)."""
    namespace, name = key
    if version_of is not None:
        name = version_of[0]
    own = {str(e["name"]): str(e["value"]) for e in user_env(spec.env) if "value" in e}
    contract = function_env(
        name,
        spec,
        # A manifest on disk was never applied: it is its Function's first generation.
        generation=None,
        default_resources=default_resources,
        code_dir=str(code_dir),
        port=port,
        admin_port=admin_port,
        namespace=namespace,  # as the downward API gives it in a cluster
        host="127.0.0.1",
        termination_log=str(termination_log),
        published_version=version_of[1] if version_of is not None else None,
    )
    return {**inherited, **own, **extra, **contract}


@dataclass
class _Replica:
    process: asyncio.subprocess.Process
    endpoint: Endpoint
    admin_port: int
    termination_log: Path
    ready: bool = False
    # Only a replica's first start is reported as starting (to be probed): once it has
    # been ready, or once it has died, it is reported again only when /readyz says ready.
    first_start: bool = True
    # Restarts in a row without becoming ready (the back-off before the next one).
    failed_restarts: int = 0
    # Starts given new ports because another process took one between free_port() and
    # the runtime's bind (a race free_port cannot close on a busy machine).
    port_retries: int = 0
    watcher: asyncio.Task[None] | None = None


@dataclass
class _LocalFunction:
    spec: FunctionSpec
    code_dir: Path
    version_of: tuple[str, int] | None = None
    replicas: list[_Replica] = field(default_factory=list)
    wanted: int = 0
    # Its last start-up fault, until a replica of it is ready again.
    fault: ReplicaFault | None = None


class LocalPlatform:
    """Each Function's replicas as local runtime processes: tells listeners the ready
    endpoints whenever they change, and implements ReplicaScaler."""

    def __init__(
        self,
        *,
        extra_env: Mapping[str, str] | None = None,
        workdir: Path | None = None,
        default_resources: Mapping[str, Any] | None = None,
        output: TextIO | None = None,
    ) -> None:
        self._functions: dict[FunctionKey, _LocalFunction] = {}
        self._listeners: list[EndpointListener] = []
        self._starting_listeners: list[EndpointListener] = []
        self._fault_listeners: list[FaultListener] = []
        # Set once the platform is closing: no replica that exits is restarted.
        self._closing = False
        self._extra_env = dict(extra_env or {})
        # The resources a Function without its own gets (the chart's functionDefaults):
        # they decide HANSHU_MEMORY_MB, as in a cluster.
        self._default_resources = dict(default_resources or {})
        self._workdir = workdir or Path(tempfile.mkdtemp(prefix="hanshu-local-"))
        self._lock = asyncio.Lock()
        self._http: aiohttp.ClientSession | None = None
        self._draining: set[asyncio.subprocess.Process] = set()
        # Each replica's termination log (its start-up fault, if it has one).
        self._logs = self._workdir / "termination-logs"
        self._logs.mkdir(parents=True, exist_ok=True)
        self._started = 0
        # Where the replicas' output is shown (ours: the terminal running hanshu dev), and
        # the tasks copying it there, until each replica closes its output.
        self._output = output or sys.stdout
        self._relays: set[asyncio.Task[None]] = set()

    def add_function(
        self,
        key: FunctionKey,
        spec: FunctionSpec,
        code_dir: Path | None = None,
        version_of: tuple[str, int] | None = None,
    ) -> None:
        """``version_of``: (Function, number) when ``key`` is a published version's."""
        self._functions[key] = _LocalFunction(spec, self._code_dir(key, spec, code_dir), version_of)

    def _code_dir(self, key: FunctionKey, spec: FunctionSpec, code_dir: Path | None) -> Path:
        """The folder a replica runs: ``code_dir``, else the inline code written out."""
        if code_dir is not None:
            return code_dir
        if spec.code.inline is None:
            raise ValueError(
                f"Function {key[1]}: the local platform runs inline code only "
                "(or pass the folder holding the code)"
            )
        code_dir = self._workdir / key[0] / key[1]
        code_dir.mkdir(parents=True, exist_ok=True)
        for name in os.listdir(code_dir):  # a file the new code no longer has is gone
            if name not in spec.code.inline and (code_dir / name).is_file():
                (code_dir / name).unlink()
        for name, content in spec.code.inline.items():
            (code_dir / name).write_text(content)
        return code_dir

    async def replace_function(
        self, key: FunctionKey, spec: FunctionSpec, code_dir: Path | None = None
    ) -> None:
        """New code (or a new spec) for a Function: its replicas are replaced by as many
        new ones, as a Deployment's rollout replaces pods. The old ones are withdrawn at
        once and drain what they are serving; requests meanwhile wait for the new ones.
        A start-up fault is forgotten: the new code may be the fix."""
        async with self._lock:
            old = self._functions[key]
            new = _LocalFunction(
                spec, self._code_dir(key, spec, code_dir), old.version_of, wanted=old.wanted
            )
            self._functions[key] = new
            stopping, old.replicas = old.replicas, []
            if stopping:
                self._publish(key)  # withdrawn (the new Function has none yet)
            for replica in stopping:
                await self._stop(replica)
            if old.fault is not None:
                self._tell_fault(key, None)
            while len(new.replicas) < new.wanted:
                new.replicas.append(await self._start(key, new))
            if new.replicas:
                self._publish(key)

    async def remove_function(self, key: FunctionKey) -> None:
        """A Function gone from the manifests: its replicas drain and stop."""
        await self.set_replicas(key, 0)
        async with self._lock:
            self._functions.pop(key, None)

    def listen(self, listener: EndpointListener) -> None:
        self._listeners.append(listener)

    def listen_starting(self, listener: EndpointListener) -> None:
        """Told the replicas on their first start, not ready yet: never one that is stopping,
        and never one that has been ready or has died (a restart is not new, as a pod the
        kubelet once called ready is not to a gateway in a cluster)."""
        self._starting_listeners.append(listener)

    def listen_faults(self, listener: FaultListener) -> None:
        """Told when a Function's replica cannot start (its start-up fault), and told None
        when one of its replicas is ready again or its code is replaced."""
        self._fault_listeners.append(listener)

    def _tell_fault(self, key: FunctionKey, fault: ReplicaFault | None) -> None:
        self._functions[key].fault = fault
        for listener in self._fault_listeners:
            listener(key, fault)

    def code_dir_of(self, key: FunctionKey) -> Path:
        """The folder a Function's replicas run (inline code written out, or its own)."""
        return self._functions[key].code_dir

    def fault(self, key: FunctionKey) -> ReplicaFault | None:
        function = self._functions.get(key)
        return None if function is None else function.fault

    def current_replicas(self, key: FunctionKey) -> int | None:
        function = self._functions.get(key)
        return None if function is None else function.wanted

    def replica_counts(self) -> dict[FunctionKey, tuple[int, int]]:
        """Each Function's (desired, ready) replicas: what the operator reports in a
        cluster as ``hanshu_function_replicas``."""
        return {
            key: (function.wanted, sum(1 for r in function.replicas if r.ready))
            for key, function in list(self._functions.items())
        }

    def replica_pids(self, key: FunctionKey) -> list[int]:
        """The process ids of a Function's running replicas (for benchmarks that measure
        the CPU a replica spends)."""
        function = self._functions.get(key)
        return [] if function is None else [r.process.pid for r in function.replicas]

    def _publish(self, key: FunctionKey) -> None:
        replicas = self._functions[key].replicas
        ready = [r.endpoint for r in replicas if r.ready]
        for listener in self._listeners:
            listener(key, ready)
        starting = [r.endpoint for r in replicas if r.first_start and not r.ready]
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
        """A new replica on new ports (a new pod), started and watched."""
        port, admin_port = free_port(), free_port()
        self._started += 1
        termination_log = self._logs / f"{key[0]}.{key[1]}.{self._started}"
        replica = _Replica(
            await self._spawn(key, function, port, admin_port, termination_log),
            Endpoint("127.0.0.1", port),
            admin_port,
            termination_log,
        )
        replica.watcher = asyncio.create_task(self._watch(key, replica))
        return replica

    async def _spawn(
        self,
        key: FunctionKey,
        function: _LocalFunction,
        port: int,
        admin_port: int,
        termination_log: Path,
    ) -> asyncio.subprocess.Process:
        env = replica_env(
            key,
            function.spec,
            inherited=os.environ,
            extra=self._extra_env,
            default_resources=self._default_resources,
            code_dir=function.code_dir,
            port=port,
            admin_port=admin_port,
            termination_log=termination_log,
            version_of=function.version_of,
        )
        process = await start_runtime(env)
        assert process.stdout is not None
        # Names padded to the longest, so every Function's lines start in one column.
        width = max(len(name) for _, name in self._functions)
        prefix = line_prefix(key[1], width, uses_colour(self._output))
        relaying = asyncio.create_task(relay(process.stdout, prefix, self._output))
        self._relays.add(relaying)
        relaying.add_done_callback(self._relays.discard)
        log.info("%s: replica started, pid %d, port %d", key[1], process.pid, port)
        return process

    async def _until_ready(self, key: FunctionKey, replica: _Replica) -> None:
        """Poll the replica's /readyz until it answers 200 (reported ready) or it exits."""
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1))
        url = f"http://127.0.0.1:{replica.admin_port}/readyz"
        exited = asyncio.ensure_future(replica.process.wait())
        try:
            while not exited.done():
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with self._http.get(url) as reply:
                        if reply.status == 200:
                            replica.ready, replica.first_start = True, False
                            replica.failed_restarts = 0
                            self._publish(key)
                            if self._functions[key].fault is not None:
                                self._tell_fault(key, None)
                            return
                # Until the next poll, or at once if it exits meanwhile.
                await asyncio.wait([exited], timeout=READY_POLL_SECONDS)
        finally:
            exited.cancel()

    async def _watch(self, key: FunctionKey, replica: _Replica) -> None:
        function = self._functions[key]
        while True:
            await self._until_ready(key, replica)
            code = await replica.process.wait()
            async with self._lock:
                if replica not in function.replicas:
                    return  # stopped on purpose
                # Withdrawn now; from here on only its /readyz brings it back, never a
                # gateway's probe: a restart is not new (it may have been ready and served
                # requests already, even if our poll did not see it in time).
                fault = self._take_startup_fault(replica)
                if (
                    fault
                    and replica.first_start
                    and PORT_TAKEN in fault
                    and replica.port_retries < MAX_PORT_RETRIES
                    and not self._closing
                ):
                    # Not the Function's fault: a new pod gets a new address; so does this.
                    replica.port_retries += 1
                    replica.endpoint = Endpoint("127.0.0.1", free_port())
                    replica.admin_port = free_port()
                    log.info(
                        "%s: a port was taken meanwhile: starting the replica on port %d",
                        key[1],
                        replica.endpoint.port,
                    )
                    self._publish(key)
                    replica.process = await self._spawn(
                        key,
                        function,
                        replica.endpoint.port,
                        replica.admin_port,
                        replica.termination_log,
                    )
                    continue
                replica.ready, replica.first_start = False, False
                if fault or code == 0 or self._closing:
                    # It cannot start (its fault is in its termination log), or it was told
                    # to stop (it drained and exited 0, as on a signal to the process
                    # group): not restarted.
                    function.replicas.remove(replica)
                    self._publish(key)
                    if fault:
                        self._tell_fault(
                            key,
                            ReplicaFault(
                                STARTUP_FAULT_REASON,
                                f"the runtime exited with code {code}: {fault}",
                            ),
                        )
                    elif not self._closing:
                        log.info(
                            "%s: replica (pid %d) exited with code 0: stopped",
                            key[1],
                            replica.process.pid,
                        )
                    return
                log.error(
                    "%s: replica (pid %d) exited with code %s: restarting it",
                    key[1],
                    replica.process.pid,
                    code,
                )
                self._publish(key)
            # Restarted on its own address, as the kubelet restarts a pod's container: at
            # once the first time, later and later while it keeps dying before ready.
            delay = 0.0
            if replica.failed_restarts:
                delay = min(
                    RESTART_BACKOFF_SECONDS * 2 ** (replica.failed_restarts - 1),
                    RESTART_BACKOFF_MAX_SECONDS,
                )
            replica.failed_restarts += 1
            await asyncio.sleep(delay)
            async with self._lock:
                if replica not in function.replicas or self._closing:
                    return  # scaled down or closing meanwhile
                replica.process = await self._spawn(
                    key,
                    function,
                    replica.endpoint.port,
                    replica.admin_port,
                    replica.termination_log,
                )

    @staticmethod
    def _take_startup_fault(replica: _Replica) -> str:
        """The start-up fault the replica's last start ended with ("" if none): the runtime
        writes it where Kubernetes reads a container's last words; the next start writes
        anew."""
        try:
            fault = replica.termination_log.read_text().strip()
            replica.termination_log.unlink()
        except OSError:
            return ""
        return fault

    async def _stop(self, replica: _Replica) -> None:
        if replica.watcher is not None:
            replica.watcher.cancel()
        if replica.process.returncode is None:
            replica.process.send_signal(signal.SIGTERM)
            # Draining can take as long as the longest request: do not hold up scaling.
            self._draining.add(replica.process)
            waiting = asyncio.get_running_loop().create_task(replica.process.wait())
            waiting.add_done_callback(lambda _: self._draining.discard(replica.process))

    def stop_restarting(self) -> None:
        """From now on no replica that exits is restarted (the process is stopping: a
        signal to its process group reaches the replicas too)."""
        self._closing = True

    async def close(self, drain_seconds: float = 10.0) -> None:
        self._closing = True
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
        if self._relays:
            # What the replicas wrote last (a drain's goodbye, a traceback) is shown too.
            await asyncio.wait(list(self._relays), timeout=drain_seconds)
        if self._http is not None:
            await self._http.close()
