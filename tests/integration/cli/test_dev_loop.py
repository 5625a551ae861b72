"""The loop people live in with ``hanshu dev`` (issue 29): start-up says what is served,
an edited handler is served without a restart, code that cannot start is refused at once
with its cause and a fix that is right on this machine, a taken port is one line, Ctrl-C
ends with one "stopped" line, and a nats-server that dies is started again."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from hanshu_cli import devmode
from hanshu_cli.devmode import DevStack
from hanshu_cli.errors import CliError

from tests.support.helpers import eventually
from tests.support.servers import free_port

MANIFEST = """\
apiVersion: hanshu.io/v1alpha1
kind: Function
metadata:
  name: greeter
spec:
  handler: index.handler
---
apiVersion: hanshu.io/v1alpha1
kind: Trigger
metadata:
  name: greeter
spec:
  functionRef:
    name: greeter
  http:
    path: /greeter
    methods: [GET]
---
apiVersion: hanshu.io/v1alpha1
kind: Trigger
metadata:
  name: nightly
spec:
  functionRef:
    name: greeter
  schedule:
    cron: "30 2 * * *"
"""


def handler_saying(word: str, imports: str = "") -> str:
    return f"{imports}\n\ndef handler(event, context):\n    return {word!r}\n"


def write_folder(folder: Path, code: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "function.yaml").write_text(MANIFEST)
    (folder / "index.py").write_text(code)
    return folder


class DevRun:
    """``hanshu dev`` as a developer runs it: in its own process group (a terminal's), its
    output read as it comes."""

    def __init__(self, *args: str) -> None:
        self.port, self.internal_port = free_port(), free_port()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "hanshu_cli",
                "dev",
                *args,
                "--port",
                str(self.port),
                "--internal-port",
                str(self.internal_port),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
            env={**os.environ, "NO_COLOR": "1"},
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.url = f"http://127.0.0.1:{self.port}"

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def said(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    def signal_group(self, signum: int) -> None:
        """As a terminal does on Ctrl-C: the signal to every process of the group."""
        os.killpg(self.process.pid, signum)

    def wait(self, timeout: float = 30) -> int:
        code = self.process.wait(timeout=timeout)
        self._reader.join(timeout=5)
        return code

    def end(self) -> None:
        if self.process.poll() is None:
            self.signal_group(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.signal_group(signal.SIGKILL)


@pytest.fixture
def greeter(tmp_path: Path) -> Iterator[tuple[Path, DevRun]]:
    folder = write_folder(tmp_path / "greeter", handler_saying("hello"))
    run = DevRun(str(folder))
    try:
        yield folder, run
    finally:
        run.end()


async def get(url: str) -> tuple[int, str]:
    timeout = aiohttp.ClientTimeout(total=90)
    async with aiohttp.ClientSession(timeout=timeout) as http, http.get(url) as reply:
        return reply.status, await reply.text()


async def answer(url: str) -> str | None:
    try:
        status, text = await get(url)
    except aiohttp.ClientError:
        return None
    return text if status == 200 else None


async def test_start_up_prints_the_route_table_and_each_replica_once(
    greeter: tuple[Path, DevRun],
) -> None:
    _, dev = greeter
    await eventually(lambda: dev.said("internal port:"), timeout=30, message=dev.output)
    # The route table: the route, the schedule with its next fire and a way to fire it now.
    assert dev.said("  GET  any host  /greeter  -> greeter"), dev.output
    assert dev.said("nightly  '30 2 * * *' (UTC)  -> greeter, next fire "), dev.output
    assert dev.said(f"curl -X POST http://127.0.0.1:{dev.internal_port}/_hanshu/enqueue/"), (
        dev.output
    )
    assert dev.said(f"internal port: http://127.0.0.1:{dev.internal_port}"), dev.output
    assert await eventually(lambda: answer(f"{dev.url}/greeter"), timeout=30) == "hello"
    # Which Function, pid and port each replica is; each scaling decision said once.
    started = [line for line in dev.lines if "greeter: replica started, pid " in line]
    assert len(started) == 1, dev.output
    assert ", port " in started[0]
    assert sum("0 -> 1" in line for line in dev.lines) == 1, dev.output


async def test_an_edited_handler_is_served_without_a_restart(
    greeter: tuple[Path, DevRun],
) -> None:
    folder, dev = greeter
    assert await eventually(lambda: answer(f"{dev.url}/greeter"), timeout=30) == "hello"
    (folder / "index.py").write_text(handler_saying("bonjour"))

    async def new_answer() -> bool:
        return await answer(f"{dev.url}/greeter") == "bonjour"

    await eventually(new_answer, timeout=30, message="the edited handler's answer")
    await eventually(
        lambda: dev.said("Function greeter: reloaded (index.py changed)"), message=dev.output
    )
    assert sum("Function greeter: reloaded" in line for line in dev.lines) == 1, dev.output


async def test_ctrl_c_ends_with_one_stopped_line_and_restarts_nothing(
    greeter: tuple[Path, DevRun],
) -> None:
    _, dev = greeter
    assert await eventually(lambda: answer(f"{dev.url}/greeter"), timeout=30) == "hello"
    dev.signal_group(signal.SIGINT)  # Ctrl-C
    assert dev.wait() == 0, dev.output
    assert dev.lines[-1].endswith("hanshu.dev stopped"), dev.output
    assert not dev.said("lost the connection to NATS"), dev.output
    # The replica got the Ctrl-C too, drained and exited 0: it was not started again.
    assert sum("replica started" in line for line in dev.lines) == 1, dev.output


async def test_code_that_cannot_start_is_refused_at_once_then_served_once_fixed(
    tmp_path: Path,
) -> None:
    folder = write_folder(tmp_path / "greeter", handler_saying("hello", "import nosuchpackage"))
    (folder / "requirements.txt").write_text("nosuchpackage\n")
    dev = DevRun(str(folder))
    try:
        await eventually(lambda: dev.said("internal port:"), timeout=30, message=dev.output)
        started = time.monotonic()
        status, body = await get(f"{dev.url}/greeter")
        # Not the 60 s cold-start timeout: the replica's fault comes back at once.
        assert time.monotonic() - started < 20
        assert status == 503
        assert "RuntimeStartupFailed" in body
        assert "Runtime.ImportModuleError" in body
        assert "'nosuchpackage', which is not installed" in body
        assert f"{sys.executable} -m pip install nosuchpackage" in body
        # What the console says: the cause, a fix for this machine, and requirements.txt.
        await eventually(lambda: dev.said("Function greeter cannot start"), message=dev.output)
        said = next(line for line in dev.lines if "Function greeter cannot start" in line)
        assert f"dev mode does not install {folder / 'requirements.txt'}" in said
        assert "function image" not in said  # the cluster's fix is not this machine's

        (folder / "index.py").write_text(handler_saying("fixed"))
        assert await eventually(lambda: answer(f"{dev.url}/greeter"), timeout=30) == "fixed"
    finally:
        dev.end()


def test_a_port_in_use_is_one_line_naming_it_and_the_option(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "greeter", handler_saying("hello"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "hanshu_cli", "dev", str(folder), "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: port {port} is in use (another hanshu dev, or another server): choose a "
        "free one with --port, or stop what listens there"
    ]
    assert "Traceback" not in result.stdout + result.stderr


def accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


async def test_a_start_that_fails_stops_what_it_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A port taken between the check and the listen (another process was quicker): the
    nats-server already started is stopped, not left running."""
    folder = write_folder(tmp_path / "greeter", handler_saying("hello"))
    monkeypatch.setattr(devmode, "port_taken", lambda host, port: False)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        stack = DevStack([folder], port=taken.getsockname()[1], internal_port=free_port())
        with pytest.raises(CliError, match=r"is in use .* --port"):
            await stack.start()
    assert stack.local_nats is not None  # it had started one
    assert stack.local_nats.process is None
    assert not accepts(stack.local_nats.port)


async def stored_async(port: int) -> bool:
    """Whether an async call to greeter is stored now (202)."""
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http,
            http.get(
                f"http://127.0.0.1:{port}/greeter",
                headers={"X-Hanshu-Invocation-Type": "Async"},
            ) as reply,
        ):
            return reply.status == 202
    except (aiohttp.ClientError, TimeoutError):
        return False


async def test_a_nats_server_that_dies_is_said_once_and_started_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO")
    folder = write_folder(tmp_path / "greeter", handler_saying("hello"))
    stack = DevStack([folder], port=free_port(), internal_port=free_port(), reload=False)
    await stack.start()
    try:
        nats = stack.local_nats
        assert nats is not None
        assert nats.process is not None
        # The gateway has its stream before the server dies (not a set-up cut short).
        await eventually(lambda: stored_async(stack.port), timeout=30, message="stored")
        first = nats.process
        first.kill()
        await eventually(
            lambda: nats.process is not first and accepts(nats.port),
            timeout=30,
            message="a new nats-server on the same port",
        )
        said = [r for r in caplog.records if "nats-server (async invocations) exited" in r.message]
        assert len(said) == 1
        await eventually(
            lambda: any("nats-server is back on" in r.message for r in caplog.records),
            message="said to be back",
        )
        assert not [r for r in caplog.records if "lost the connection" in r.getMessage()]
        # Async invocations are stored again through the new server.
        await eventually(lambda: stored_async(stack.port), timeout=30, message="stored again")
    finally:
        await stack.stop()


async def test_a_changed_route_is_served_and_a_broken_manifest_keeps_what_ran(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO")
    folder = write_folder(tmp_path / "greeter", handler_saying("hello"))
    stack = DevStack([folder], port=free_port(), internal_port=free_port(), nats_url="off")
    await stack.start()
    url = f"http://127.0.0.1:{stack.port}"
    try:
        assert await eventually(lambda: answer(f"{url}/greeter"), timeout=30) == "hello"
        manifest = folder / "function.yaml"
        manifest.write_text(MANIFEST.replace("path: /greeter", "path: /hi"))

        async def moved() -> bool:
            return await answer(f"{url}/hi") == "hello" and (await get(f"{url}/greeter"))[0] == 404

        await eventually(moved, timeout=30, message="the route moved")
        await eventually(
            lambda: any(
                r.getMessage() == "Trigger greeter: GET  any host  /hi  -> greeter"
                for r in caplog.records
            ),
            message="the change said",
        )
        manifest.write_text("kind: [unclosed")
        await eventually(
            lambda: any("not reloaded" in r.getMessage() for r in caplog.records),
            message="the broken manifest said",
        )
        assert await answer(f"{url}/hi") == "hello"  # what ran before still runs
    finally:
        await stack.stop()


def test_killed_outright_it_leaves_no_server_or_replica_running(
    greeter: tuple[Path, DevRun],
) -> None:
    """SIGKILL gives hanshu dev no chance to stop anything: the kernel ends its
    nats-server and its replicas with it (none is left holding a port)."""
    _, dev = greeter
    deadline = time.monotonic() + 30
    while not dev.said("internal port:") and time.monotonic() < deadline:
        time.sleep(0.05)
    with urllib.request.urlopen(f"{dev.url}/greeter", timeout=30) as reply:
        assert reply.read() == b"hello"
    nats_line = next(line for line in dev.lines if "NATS JetStream (async invocations) at" in line)
    nats_port = int(nats_line.rsplit(":", 1)[1])
    replica_line = next(line for line in dev.lines if "greeter: replica started" in line)
    replica_port = int(replica_line.rsplit("port ", 1)[1])
    assert accepts(nats_port)
    assert accepts(replica_port)
    os.kill(dev.process.pid, signal.SIGKILL)  # hanshu dev alone, not its group
    dev.wait()
    deadline = time.monotonic() + 20
    while (accepts(nats_port) or accepts(replica_port)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not accepts(nats_port), "the nats-server outlived hanshu dev"
    assert not accepts(replica_port), "the replica outlived hanshu dev"
