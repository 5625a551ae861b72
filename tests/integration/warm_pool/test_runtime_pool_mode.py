"""A runtime started in pool mode, as a real process: it serves nothing until the
platform specializes it (with the pool token, on the admin port), then serves that one
Function for good; a specialization that fails leaves it refusing for good."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from hanshu_api.warm_pool import POOL_MODE_ENV, POOL_TOKEN_ENV, SPECIALIZE_PATH, SpecializeRequest

from tests.support.helpers import eventually
from tests.support.otlp_receiver import OtlpReceiver, otlp_receiver
from tests.support.runtime_process import RuntimeProcess, start_runtime

__all__ = ["otlp_receiver"]

TOKEN = "pool-token-for-tests"
HELLO = """
import os


def handler(event, context):
    return {"greeting": os.environ.get("GREETING"), "token": os.environ.get("HANSHU_POOL_TOKEN"),
            "pool": os.environ.get("HANSHU_POOL"), "function": context.function_name}
"""


def call(url: str, data: bytes | None = None, token: str | None = None) -> tuple[int, dict]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, json.loads(reply.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def specialize_request(code_dir: Path, files: dict[str, str] | None = None) -> bytes:
    return SpecializeRequest(
        namespace="default",
        function="hello",
        generation=1,
        env={
            "HANSHU_HANDLER": "index.handler",
            "HANSHU_CODE_DIR": str(code_dir),
            "HANSHU_FUNCTION_NAME": "hello",
            # What a replica's env says; the pool process keeps listening where it does.
            "HANSHU_PORT": "8080",
            "GREETING": "hi",
        },
        files=files or {"index.py": HELLO},
    ).encode()


def start_pooled(tmp_path: Path) -> RuntimeProcess:
    runtime = start_runtime(
        tmp_path / "unused",
        "unused.handler",
        tmp_path,
        **{POOL_MODE_ENV: "1", POOL_TOKEN_ENV: TOKEN},
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            status, _ = call(f"{runtime.admin_url}/healthz")
            if status == 200:
                break
        except OSError:
            pass
        if runtime.process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"the pool runtime did not start: {runtime.process.stderr}")
        time.sleep(0.02)
    return runtime


@pytest.fixture
def pooled(tmp_path: Path) -> Iterator[RuntimeProcess]:
    runtime = start_pooled(tmp_path)
    yield runtime
    runtime.stop()


@pytest.fixture
def traced_pool(otlp_receiver: OtlpReceiver, tmp_path: Path) -> Iterator[RuntimeProcess]:
    """A pool runtime started with an OTLP endpoint (as the operator's pool pods are)."""
    runtime = start_pooled(tmp_path)
    yield runtime
    runtime.stop()


def test_a_pool_runtime_is_alive_but_not_ready_and_refuses_calls(pooled: RuntimeProcess) -> None:
    assert call(f"{pooled.admin_url}/healthz") == (200, {"status": "alive", "phase": "pooled"})
    # Never in a Service: not ready for traffic.
    assert call(f"{pooled.admin_url}/readyz")[0] == 503
    status, body = call(f"{pooled.url}/anything")
    assert status == 503
    assert body["errorType"] == "NotSpecialized"


def test_specializing_needs_the_pool_token(pooled: RuntimeProcess, tmp_path: Path) -> None:
    url = f"{pooled.admin_url}{SPECIALIZE_PATH}"
    wanted = specialize_request(tmp_path / "code")
    for token in (None, "wrong", TOKEN + "x", ""):
        status, body = call(url, wanted, token)
        assert (status, body["errorType"]) == (401, "Unauthorized"), token
    # Refused without a trace: still a pool runtime, and the right token still works.
    assert call(f"{pooled.url}/x")[0] == 503
    assert call(url, wanted, TOKEN)[0] == 200


def test_a_bad_request_is_refused_naming_the_field(pooled: RuntimeProcess) -> None:
    url = f"{pooled.admin_url}{SPECIALIZE_PATH}"
    status, body = call(url, b'{"namespace": "default", "function": ""}', TOKEN)
    assert status == 400
    assert "function must be a non-empty string" in body["errorMessage"]
    status, body = call(url, b"[]", TOKEN)
    assert status == 400
    assert "JSON object" in body["errorMessage"]
    # A refused request does not use the runtime up: it is still a pool runtime.
    assert call(f"{pooled.admin_url}/healthz")[1]["phase"] == "pooled"


def test_specialized_it_serves_the_function_and_never_another(
    pooled: RuntimeProcess, tmp_path: Path
) -> None:
    url = f"{pooled.admin_url}{SPECIALIZE_PATH}"
    status, body = call(url, specialize_request(tmp_path / "code"), TOKEN)
    assert status == 200, body
    assert body["function"] == "hello"
    assert (tmp_path / "code" / "index.py").read_text() == HELLO
    assert call(f"{pooled.admin_url}/readyz")[0] == 200
    status, answer = call(f"{pooled.url}/hi")
    assert status == 200
    # The Function's env, without the pool's own variables (its token least of all).
    assert answer == {"greeting": "hi", "token": None, "pool": None, "function": "hello"}
    status, body = call(url, specialize_request(tmp_path / "other"), TOKEN)
    assert (status, body["errorType"]) == (409, "AlreadySpecialized")
    assert not (tmp_path / "other").exists()


def test_code_that_does_not_start_leaves_the_runtime_refusing_for_good(
    pooled: RuntimeProcess, tmp_path: Path
) -> None:
    url = f"{pooled.admin_url}{SPECIALIZE_PATH}"
    broken = specialize_request(tmp_path / "code", {"index.py": "import not_a_module_here\n"})
    status, body = call(url, broken, TOKEN)
    assert status == 500
    assert body["errorType"] == "Runtime.ImportModuleError"
    assert "not_a_module_here" in body["errorMessage"]
    # Stays up, refusing: the platform discards it (a restart would make it generic again
    # in a pod already taken for a Function).
    assert pooled.process.poll() is None
    assert call(f"{pooled.admin_url}/readyz")[0] == 503
    assert call(f"{pooled.url}/x")[0] == 503
    assert call(url, specialize_request(tmp_path / "again"), TOKEN)[0] == 409
    assert "Runtime.ImportModuleError" in pooled.termination_log.read_text()


async def test_a_specialized_runtime_traces_as_its_function(
    traced_pool: RuntimeProcess, otlp_receiver: OtlpReceiver, tmp_path: Path
) -> None:
    """The spans of requests a pool runtime serves once specialized name the Function, not
    the generic process the pool started."""
    url = f"{traced_pool.admin_url}{SPECIALIZE_PATH}"
    assert call(url, specialize_request(tmp_path / "code"), TOKEN)[0] == 200
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    request = urllib.request.Request(
        f"{traced_pool.url}/hi", headers={"traceparent": f"00-{trace}-00f067aa0ba902b7-01"}
    )
    with urllib.request.urlopen(request, timeout=10) as reply:
        assert reply.status == 200
    spans = await eventually(lambda: otlp_receiver.trace(trace), message="the replica's span")
    assert [(span.service, span.name) for span in spans] == [("hello.default", "hello")]
