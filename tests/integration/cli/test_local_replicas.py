"""Dev mode's replicas (the local platform's runtime processes) as a gateway sees them: a
first start is reported as starting, so the gateway probes it and serves a cold request
the moment it answers; a replica that dies is restarted on its own address and, as a pod the
kubelet once called ready is to the cluster's gateway, never reported as starting again."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path

import aiohttp
import pytest
import yaml
from hanshu_api.conditions import ReplicaFault
from hanshu_api.models import parse_function_spec
from hanshu_api.platform import Endpoint, FunctionKey
from hanshu_cli import local_platform
from hanshu_cli.devmode import DevStack
from hanshu_cli.local_platform import LocalPlatform, free_port

from tests.support.helpers import eventually

KEY = ("default", "fragile")
CODE = textwrap.dedent("""
    import os


    def handler(event, context):
        if event["path"].endswith("/crash"):
            os._exit(3)  # the process dies mid-request
        return "alive"
""")


class Reports:
    """What the local platform tells its two kinds of listeners, in order."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, list[Endpoint]]] = []

    def ready(self, key: FunctionKey, endpoints: Sequence[Endpoint]) -> None:
        self.seen.append(("ready", list(endpoints)))

    def starting(self, key: FunctionKey, endpoints: Sequence[Endpoint]) -> None:
        self.seen.append(("starting", list(endpoints)))

    def last(self, kind: str) -> list[Endpoint]:
        return next((e for k, e in reversed(self.seen) if k == kind), [])

    def starting_after(self, index: int) -> list[Endpoint]:
        return [e for k, found in self.seen[index:] if k == "starting" for e in found]


def platform_with(tmp_path: Path, **spec: str) -> tuple[LocalPlatform, Reports]:
    platform = LocalPlatform(workdir=tmp_path)
    platform.add_function(
        KEY,
        parse_function_spec(
            {"handler": "index.handler", "code": {"inline": {"index.py": CODE}}, **spec}
        ),
    )
    reports = Reports()
    platform.listen(reports.ready)
    platform.listen_starting(reports.starting)
    return platform, reports


async def crash(http: aiohttp.ClientSession, endpoint: Endpoint) -> None:
    with pytest.raises(aiohttp.ClientError):  # it dies without a reply
        async with http.get(f"{endpoint.url}/crash") as reply:
            await reply.read()


async def answers_ready(http: aiohttp.ClientSession, endpoint: Endpoint) -> bool:
    try:
        async with http.get(f"{endpoint.url}/_hanshu/ready") as reply:
            return reply.status == 200
    except aiohttp.ClientError:
        return False


async def test_dev_mode_serves_a_cold_request_the_moment_the_replica_answers_its_ready_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The platform's own readiness poll comes a minute after the replica starts: only the
    # gateway's probe can hand it the waiting request within the cold-start timeout.
    monkeypatch.setattr(local_platform, "READY_POLL_SECONDS", 60.0)
    manifest = tmp_path / "hello.yaml"
    manifest.write_text(
        yaml.safe_dump_all(
            [
                {
                    "apiVersion": "hanshu.io/v1alpha1",
                    "kind": "Function",
                    "metadata": {"name": "fragile"},
                    "spec": {"handler": "index.handler", "code": {"inline": {"index.py": CODE}}},
                },
                {
                    "apiVersion": "hanshu.io/v1alpha1",
                    "kind": "Trigger",
                    "metadata": {"name": "web"},
                    "spec": {"functionRef": {"name": "fragile"}, "http": {"path": "/"}},
                },
            ]
        )
    )
    stack = DevStack(
        [manifest],
        port=free_port(),
        internal_port=free_port(),
        nats_url="off",
        cold_start_timeout=20,
    )
    await stack.start()
    try:
        pool = stack.catalog.functions[KEY].pool
        async with aiohttp.ClientSession() as http:
            started = time.monotonic()
            async with http.get(f"http://127.0.0.1:{stack.port}/hello") as reply:
                assert reply.status == 200
                assert await reply.text() == "alive"
                assert reply.headers["X-Hanshu-Cold-Start"] == "true"
            assert time.monotonic() - started < 15
            # Served by the probe's word alone: the platform still calls it starting.
            assert len(pool.starting) == 1
            assert list(pool.ready) == list(pool.starting)
    finally:
        await stack.stop()


async def test_a_replica_that_dies_after_ready_restarts_on_its_address_never_as_starting(
    tmp_path: Path,
) -> None:
    platform, reports = platform_with(tmp_path)
    try:
        await platform.set_replicas(KEY, 1)
        [endpoint] = reports.last("starting")  # its first start: the gateway may probe it
        await eventually(lambda: reports.last("ready") == [endpoint], message="ready")
        since = len(reports.seen)
        async with aiohttp.ClientSession() as http:
            await crash(http, endpoint)
            await eventually(lambda: reports.last("ready") == [], message="withdrawn")
            await eventually(
                lambda: reports.last("ready") == [endpoint], message="ready again, same address"
            )
            assert await answers_ready(http, endpoint)
        assert reports.starting_after(since) == []
    finally:
        await platform.close()


async def test_a_replica_that_dies_before_the_platform_saw_it_ready_is_restarted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It may have served requests already (through a gateway's probe): it is restarted
    like any replica that dies, and its restart is not new either."""
    monkeypatch.setattr(local_platform, "READY_POLL_SECONDS", 60.0)  # the platform never sees
    platform, reports = platform_with(tmp_path)
    try:
        await platform.set_replicas(KEY, 1)
        [endpoint] = reports.last("starting")
        async with aiohttp.ClientSession() as http:
            await eventually(lambda: answers_ready(http, endpoint), message="answering")
            since = len(reports.seen)
            await crash(http, endpoint)
            await eventually(lambda: reports.last("starting") == [], message="not starting")
            await eventually(lambda: answers_ready(http, endpoint), message="restarted in place")
        assert reports.starting_after(since) == []
        assert all(not found for kind, found in reports.seen if kind == "ready")
    finally:
        await platform.close()


async def test_a_replica_that_cannot_start_is_not_restarted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="hanshu.local")
    platform, reports = platform_with(tmp_path, initializer="index.missing")
    try:
        await platform.set_replicas(KEY, 1)
        assert len(reports.last("starting")) == 1
        await eventually(lambda: reports.last("starting") == [], timeout=20, message="gone")
        await asyncio.sleep(0.5)  # a restart would be at once
        starts = [r for r in caplog.records if "replica started" in r.getMessage()]
        assert len(starts) == 1
        assert reports.last("ready") == []
    finally:
        await platform.close()


async def test_a_replica_told_to_stop_by_a_signal_is_not_restarted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """SIGTERM to the process group (as a terminal or a supervisor sends) reaches each
    replica: it drains and exits 0, and a replica that exits 0 was told to stop."""
    caplog.set_level(logging.INFO, logger="hanshu.local")
    platform, reports = platform_with(tmp_path)
    try:
        await platform.set_replicas(KEY, 1)
        await eventually(lambda: reports.last("ready"), message="ready")
        (pid,) = platform.replica_pids(KEY)
        os.kill(pid, signal.SIGTERM)
        await eventually(lambda: platform.replica_pids(KEY) == [], message="gone")
        await asyncio.sleep(0.5)  # a restart would be at once
        assert platform.replica_pids(KEY) == []
        assert reports.last("ready") == []
        starts = [r for r in caplog.records if "replica started" in r.getMessage()]
        assert len(starts) == 1
    finally:
        await platform.close()


async def test_a_start_up_fault_is_told_and_forgotten_when_the_code_is_replaced(
    tmp_path: Path,
) -> None:
    platform, reports = platform_with(tmp_path, initializer="index.missing")
    faults: list[ReplicaFault | None] = []
    platform.listen_faults(lambda _key, fault: faults.append(fault))
    try:
        await platform.set_replicas(KEY, 1)
        await eventually(lambda: faults, timeout=20, message="the fault")
        fault = faults[0]
        assert fault is not None
        assert fault.reason == "RuntimeStartupFailed"
        assert "Runtime.HandlerNotFound" in fault.message or "initializer" in fault.message
        fixed = parse_function_spec(
            {"handler": "index.handler", "code": {"inline": {"index.py": CODE}}}
        )
        await platform.replace_function(KEY, fixed)
        assert faults[-1] is None
        await eventually(lambda: reports.last("ready"), timeout=20, message="the fixed code")
    finally:
        await platform.close()


async def test_a_replica_whose_port_is_taken_meanwhile_starts_on_another(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """free_port() picks a port nobody listens on, but until the runtime binds it anyone
    may take it: on a busy machine that happens. Like a new pod, the replica gets a new
    address; it is not reported as code that cannot start."""
    import socket

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    taken_port = taken.getsockname()[1]
    picks = iter([taken_port])
    monkeypatch.setattr(local_platform, "free_port", lambda: next(picks, None) or free_port())
    platform, reports = platform_with(tmp_path)
    faults: list[ReplicaFault | None] = []
    platform.listen_faults(lambda _key, fault: faults.append(fault))
    try:
        await platform.set_replicas(KEY, 1)
        ready = await eventually(lambda: reports.last("ready"), timeout=30, message="ready")
        assert [endpoint.port for endpoint in ready] != [taken_port]
        assert faults == []
    finally:
        await platform.close()
        taken.close()
