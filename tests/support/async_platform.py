"""Async invocation on real parts: a nats-server with JetStream, the dev platform (gateway,
autoscaler, runtime replicas) as its own process, and dispatchers as their own processes so
a test can kill one with SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hanshu_api.invocations import FINAL_STATES
from hanshu_cli.local_nats import LocalNats
from prometheus_client.parser import text_string_to_metric_families

from tests.support.dev_platform import Platform, function
from tests.support.helpers import eventually
from tests.support.servers import free_port

ASYNC_HANDLERS = textwrap.dedent("""
    import json
    import os
    import time


    def _event_body(event):
        body = event.get("body") if isinstance(event, dict) else None
        try:
            return json.loads(body) if body else {}
        except ValueError:
            return {"text": body}


    def _note(context, what):
        # One line per run, so a test counts how often each invocation really ran.
        with open(os.environ["RUNS_FILE"], "a") as runs:
            runs.write(json.dumps({"id": context.invocation_id, "attempt": context.attempt,
                                   "type": context.invocation_type, "what": what}) + "\\n")


    def work(event, context):
        body = _event_body(event)
        _note(context, "start")
        if body.get("crashFirst") and context.attempt == 1:
            os._exit(9)  # the replica dies mid-invocation
        time.sleep(float(body.get("seconds", 0)))
        if body.get("fail"):
            raise RuntimeError(f"asked to fail: {body.get('n')}")
        if body.get("status"):
            return {"statusCode": int(body["status"]), "body": "as asked"}
        _note(context, "done")
        return {"n": body.get("n"), "path": event.get("path"), "id": context.invocation_id,
                "attempt": context.attempt, "type": context.invocation_type}


    def sink(event, context):
        # A destination Function: it keeps each record it is sent.
        with open(os.environ["SINK_FILE"], "a") as sink:
            sink.write(json.dumps(json.loads(event["body"]) if "body" in event else event)
                       + "\\n")
        return "kept"
""")


@dataclass
class AsyncPlatform(Platform):
    nats: LocalNats
    autoscaler_port: int
    runs_file: Path
    sink_file: Path
    dispatchers: list[subprocess.Popen[bytes]]
    dispatcher_env: dict[str, str]
    tmp: Path
    dispatcher_ports: list[int] = field(default_factory=list)

    def start_dispatcher(
        self, module: str = "hanshu_dispatcher", **env: str
    ) -> subprocess.Popen[bytes]:
        port = free_port()
        with (self.tmp / f"dispatcher-{len(self.dispatchers)}.log").open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", module],
                env={
                    **os.environ,
                    **self.dispatcher_env,
                    **env,
                    "HANSHU_DISPATCHER_PORT": str(port),
                },
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.dispatchers.append(process)
        self.dispatcher_ports.append(port)
        return process

    def runs(self) -> list[dict[str, Any]]:
        return complete_json_lines(self.runs_file)

    def sunk(self) -> list[dict[str, Any]]:
        return complete_json_lines(self.sink_file)

    def dispatcher_logs(self) -> str:
        return "\n".join(p.read_text() for p in sorted(self.tmp.glob("dispatcher-*.log")))

    def dispatcher_samples(self, name: str) -> list[tuple[dict[str, str], float]]:
        """The samples named ``name`` on the /metrics pages of the dispatchers still running,
        with their labels."""
        found = []
        for process, port in zip(self.dispatchers, self.dispatcher_ports, strict=True):
            if process.poll() is not None:
                continue
            url = f"http://127.0.0.1:{port}/metrics"
            try:
                with urllib.request.urlopen(url, timeout=5) as reply:
                    page = reply.read().decode()
            except OSError:
                continue  # not serving yet
            found += [
                (sample.labels, sample.value)
                for family in text_string_to_metric_families(page)
                for sample in family.samples
                if sample.name == name
            ]
        return found


def complete_json_lines(path: Path) -> list[dict[str, Any]]:
    """The records replicas have appended to ``path``, one JSON line each. A test reads
    while replicas write: a last line without its newline is still being written, and is
    left for the next read."""
    if not path.exists():
        return []
    text = path.read_text()
    complete = text[: text.rfind("\n") + 1]
    return [json.loads(line) for line in complete.splitlines() if line]


def async_function(name: str, handler: str = "handlers.work", **spec: Any) -> dict[str, Any]:
    return function(name, handler, ASYNC_HANDLERS, **spec)


@pytest.fixture
def async_platform(platform_factory: Any, tmp_path: Path) -> Iterator[Any]:
    """Start NATS and the dev platform for ``documents``; dispatchers are started by the
    test (``dispatchers=N`` at once) with fast retries and a short ack deadline."""
    made: list[AsyncPlatform] = []

    def start(documents: list[dict[str, Any]], dispatchers: int = 1, **env: str) -> AsyncPlatform:
        runs, sink = tmp_path / "runs.ndjson", tmp_path / "sink.ndjson"
        for document in documents:
            if document["kind"] == "Function":
                document["spec"].setdefault("env", []).extend(
                    [
                        {"name": "RUNS_FILE", "value": str(runs)},
                        {"name": "SINK_FILE", "value": str(sink)},
                    ]
                )
        nats = LocalNats(store_dir=str(tmp_path / "nats")).start()
        autoscaler_port = free_port()
        base = platform_factory(
            documents,
            "--nats-url",
            nats.url,
            "--no-dispatcher",
            "--autoscaler-port",
            str(autoscaler_port),
        )
        platform = AsyncPlatform(
            base.process,
            base.port,
            base.internal_port,
            nats,
            autoscaler_port,
            runs,
            sink,
            [],
            {
                "HANSHU_NATS_URL": nats.url,
                "HANSHU_GATEWAY_INTERNAL_URL": base.internal_url,
                "HANSHU_AUTOSCALER_URL": f"http://127.0.0.1:{autoscaler_port}",
                "HANSHU_DISPATCHER_HOST": "127.0.0.1",
                "HANSHU_ACK_WAIT_SECONDS": "2",
                "HANSHU_RETRY_BASE_SECONDS": "0.1",
                "HANSHU_RETRY_MAX_SECONDS": "1",
                "HANSHU_DISCOVER_INTERVAL": "0.2",
                "HANSHU_CALL_MARGIN_SECONDS": "20",
                **env,
            },
            tmp_path,
            log_path=base.log_path,
        )
        made.append(platform)

        def async_connected() -> bool:
            return get_json(f"{base.internal_url}/readyz")[1].get("async") == "connected"

        wait_until(async_connected, "the gateway connected to NATS")
        for _ in range(dispatchers):
            platform.start_dispatcher()
        return platform

    yield start
    for platform in made:
        for process in platform.dispatchers:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in platform.dispatchers:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        platform.nats.close()


def wait_until(condition: Any, what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {timeout:g}s")
        time.sleep(0.02)


def get_json(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, json.load(reply)
    except urllib.error.HTTPError as failed:
        return failed.code, json.loads(failed.read() or b"{}")


async def final_status(
    platform: AsyncPlatform, invocation_id: str, timeout: float = 30.0, **headers: str
) -> dict[str, Any]:
    url = f"{platform.url}/_hanshu/invocations/{invocation_id}"

    def finished() -> dict[str, Any] | None:
        status, record = get_json(url, headers)
        assert status == 200, (status, record)
        return record if record["state"] in FINAL_STATES else None

    return await eventually(
        finished, timeout=timeout, interval=0.05, message=f"invocation {invocation_id} ended"
    )
