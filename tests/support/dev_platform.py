"""The whole platform on loopback: ``hanshu dev`` (``python -m hanshu_cli dev``) as its own
process, with runtime processes as replicas, configured from manifests written by each test."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.servers import free_port

HANDLERS = textwrap.dedent("""
    import time


    def echo(event, context):
        return {"path": event["path"], "method": event["httpMethod"],
                "headers": event["headers"], "query": event["queryParameters"],
                "body": event["body"]}


    def slow(event, context):
        time.sleep(float(event["queryParameters"].get("seconds", "0.2")))
        return "done"


    def never_ready(context):
        time.sleep(60)  # an initializer that outlasts any cold-start timeout a test sets


    def invoked(event, context):
        return {"event": event}


    def crash(event, context):
        import os

        if event["path"].endswith("/crash"):
            record = event["queryParameters"].get("record")
            if record:  # one line per run, so a test can count them
                with open(record, "a") as runs:
                    runs.write("ran\\n")
            os._exit(3)  # the process dies mid-request, as with a segfault in a C extension
        return "alive"
""")


@dataclass
class Platform:
    process: subprocess.Popen[str]
    port: int
    internal_port: int
    # Where the platform's output goes: a file, so nothing blocks on a full pipe however
    # much it logs, and a test can read what the gateway logged.
    log_path: Path | None = field(default=None, kw_only=True)

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def internal_url(self) -> str:
        return f"http://127.0.0.1:{self.internal_port}"

    def functions(self) -> dict[str, dict[str, Any]]:
        with urllib.request.urlopen(f"{self.internal_url}/functions", timeout=5) as reply:
            return {f["name"]: f for f in json.load(reply)}

    def ready_replicas(self, name: str) -> int:
        return int(self.functions()[name]["readyReplicas"])


def function(
    name: str, handler: str = "handlers.echo", source: str = HANDLERS, **spec: Any
) -> dict[str, Any]:
    """A Function of inline code: ``source`` is the handler module's text (a ``code``
    in ``spec`` replaces it whole)."""
    body = {
        "handler": handler,
        "code": {"inline": {f"{handler.split('.', 1)[0]}.py": source}},
        "scaling": {"scaleToZeroGracePeriod": "2s", "targetConcurrency": 5},
    }
    body.update(spec)
    return {
        "apiVersion": "hanshu.io/v1alpha1",
        "kind": "Function",
        "metadata": {"name": name},
        "spec": body,
    }


def trigger(name: str, function_name: str, **http: Any) -> dict[str, Any]:
    return {
        "apiVersion": "hanshu.io/v1alpha1",
        "kind": "Trigger",
        "metadata": {"name": name},
        "spec": {"functionRef": {"name": function_name}, "http": http},
    }


@pytest.fixture
def platform_factory(tmp_path: Path) -> Iterator[Any]:
    started: list[Platform] = []

    def start(documents: list[dict[str, Any]], *args: str) -> Platform:
        manifest = tmp_path / f"manifests-{len(started)}.yaml"
        manifest.write_text(yaml.safe_dump_all(documents))
        port, internal = free_port(), free_port()
        log_path = tmp_path / f"platform-{len(started)}.log"
        log = log_path.open("w")
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "hanshu_cli",
                "dev",
                str(manifest),
                "--port",
                str(port),
                "--internal-port",
                str(internal),
                "--stable-window",
                "2",
                *args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        log.close()  # the child has its own copy
        platform = Platform(process, port, internal, log_path=log_path)
        started.append(platform)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"the dev platform exited: {platform.logs()}")
            try:
                platform.functions()
                return platform
            except OSError:
                time.sleep(0.05)
        pytest.fail("the dev platform did not start")

    yield start
    for platform in started:
        platform.process.terminate()
        try:
            platform.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            platform.process.kill()
