"""Stream Triggers under the operator's real daemon, against kmock: a Redis that is down
makes the Trigger Ready=False with the reason (and one Warning), and reading resumes by
itself when it is back."""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path

import pytest
from hanshu_api import API_VERSION, FUNCTION_PLURAL, TRIGGER_PLURAL

from tests.support.helpers import eventually
from tests.support.operator_cluster import Cluster, run_operator
from tests.support.operator_objects import TRG, hello, trigger
from tests.support.servers import free_port


def source_ready(cluster: Cluster, status: str, reason: str):
    def probe() -> dict | None:
        found = cluster.condition(TRG, "orders", "SourceReady")
        return found if found and (found["status"], found["reason"]) == (status, reason) else None

    return probe


@pytest.mark.slow
async def test_a_redis_that_is_down_says_so_and_reading_resumes(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server; .ci/run does)")
    monkeypatch.setenv("HANSHU_GATEWAY_INTERNAL_URL", f"http://127.0.0.1:{free_port()}")
    port = free_port()  # nothing listens here yet
    url = f"redis://127.0.0.1:{port}/0"
    async with run_operator(cluster) as operator:
        await operator.create(API_VERSION, FUNCTION_PLURAL, hello())
        await operator.create(
            "v1",
            "secrets",
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "redis"},
                "data": {"url": base64.b64encode(url.encode()).decode()},
            },
        )
        await operator.create(
            API_VERSION,
            TRIGGER_PLURAL,
            trigger(
                "orders", stream={"redis": {"stream": "orders", "urlSecretRef": {"name": "redis"}}}
            ),
        )
        down = await eventually(
            source_ready(operator, "False", "SourceUnavailable"), timeout=30, message="down"
        )
        assert "Redis stream orders" in down["message"]
        ready = operator.condition(TRG, "orders")
        assert ready is not None
        assert ready["status"] == "False"
        warned = await eventually(lambda: operator.events("SourceUnavailable"), message="Warning")
        assert len(warned) == 1  # once per change, not once per reconnect attempt

        server = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--dir", str(tmp_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            up = await eventually(
                source_ready(operator, "True", "Reading"), timeout=60, message="reading again"
            )
            assert "Redis stream orders" in up["message"]
            status = operator.object(TRG, "orders")["status"]
            assert status["type"] == "stream"
            assert status["lag"] == 0
        finally:
            server.terminate()
            server.wait(timeout=10)
