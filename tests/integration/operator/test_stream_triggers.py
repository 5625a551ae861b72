"""Stream Triggers under the operator, against kmock and a real nats-server: the operator
reads no stream itself. It publishes the Trigger into the stream catalog bucket, its
Secret's URL sealed (NATS readers never see it), and writes the Trigger status from what
the dispatchers report: a source that is down makes the Trigger Ready=False with the
reason (and one Warning), and reading again shows as Reading with the lag."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
from hanshu_api import API_VERSION, FUNCTION_PLURAL, TRIGGER_PLURAL
from hanshu_api.jetstream import ensure_stream_buckets
from hanshu_api.schedules import entry_key
from hanshu_api.streams import StreamEntry, StreamReport, stream_entry
from hanshu_cli.local_nats import LocalNats
from nats.js.errors import KeyNotFoundError

from tests.support.helpers import eventually
from tests.support.operator_cluster import Cluster, run_operator
from tests.support.operator_objects import TRG, hello, trigger

TOKEN = "the-internal-token"
URL = "redis://:s3cret@127.0.0.1:6379/0"


def source_ready(cluster: Cluster, status: str, reason: str, saying: str = "") -> Any:
    def probe() -> dict[str, Any] | None:
        found = cluster.condition(TRG, "orders", "SourceReady")
        if not found or (found["status"], found["reason"]) != (status, reason):
            return None
        return found if saying in found["message"] else None

    return probe


@pytest.fixture
def local_nats(tmp_path: Path) -> Iterator[LocalNats]:
    server = LocalNats(store_dir=str(tmp_path / "nats")).start()
    yield server
    server.close()


async def test_a_stream_is_published_sealed_and_its_readers_reports_become_its_status(
    cluster: Cluster, local_nats: LocalNats, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("HANSHU_NATS_URL", local_nats.url)
    monkeypatch.setenv("HANSHU_INTERNAL_TOKEN", TOKEN)
    monkeypatch.setenv("HANSHU_GATEWAY_INTERNAL_URL", "http://127.0.0.1:1")
    client = await nats.connect(local_nats.url)
    buckets = await ensure_stream_buckets(client)
    key = entry_key("ns1", "orders")

    async def published() -> bytes | None:
        try:
            return (await buckets.catalog.get(key)).value
        except KeyNotFoundError:
            return None

    def report(reader: str, healthy: bool, message: str, **more: Any) -> StreamReport:
        return StreamReport("ns1", "orders", reader, healthy, message, time.time(), **more)

    try:
        async with run_operator(cluster) as operator:
            await operator.create(API_VERSION, FUNCTION_PLURAL, hello())
            stream = {"redis": {"stream": "orders", "urlSecretRef": {"name": "redis"}}}
            await operator.create(API_VERSION, TRIGGER_PLURAL, trigger("orders", stream=stream))
            # No Secret yet: said in SourceReady, nothing published.
            missing = await eventually(
                source_ready(operator, "False", "SourceUnavailable"), message="no Secret"
            )
            assert "the Secret 'redis'" in missing["message"]
            assert await published() is None

            await operator.create(
                "v1",
                "secrets",
                {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "metadata": {"name": "redis"},
                    "data": {"url": base64.b64encode(URL.encode()).decode()},
                },
            )
            # An edit reaches the dispatchers too.
            await operator.patch(
                API_VERSION,
                TRIGGER_PLURAL,
                "orders",
                {"metadata": {"generation": 2}, "spec": {"stream": {"batchSize": 10}}},
            )
            raw = await eventually(published, timeout=30, message="the stream in the catalog")
            assert b"s3cret" not in raw  # who reads NATS does not read the Secret
            entry = StreamEntry.parse(raw)
            assert entry.function == "hello"
            assert entry.stream["redis"]["stream"] == "orders"
            assert entry.url(TOKEN) == URL  # the dispatchers open it with the token
            assert entry.source().batch_size == 10

            # A dispatcher cannot reach the source.
            down = report("a", False, "Redis stream orders (group g): Connection refused")
            await buckets.reports.put(down.key, down.encode())
            await eventually(
                source_ready(operator, "False", "SourceUnavailable", "Connection refused"),
                message="down",
            )
            ready = operator.condition(TRG, "orders")
            assert ready is not None
            assert ready["status"] == "False"
            # One Warning per change, with what the server said.
            await eventually(
                lambda: [
                    e
                    for e in operator.events("SourceUnavailable")
                    if "Connection refused" in e["message"]
                ],
                message="the Warning",
            )
            warned = operator.events("SourceUnavailable")

            # Two readers (unordered): one reads, the other is down; the Trigger is read.
            up = report("b", True, "reading Redis stream orders", lag=7, last_delivery=1.0e9)
            await buckets.reports.put(up.key, up.encode())
            await eventually(source_ready(operator, "True", "Reading"), message="reading")
            status = operator.object(TRG, "orders")["status"]
            assert status["type"] == "stream"
            assert status["lag"] == 7
            assert status["lastDeliveryTime"] == "2001-09-09T01:46:40Z"
            assert len(operator.events("SourceUnavailable")) == len(warned)

            # Deleted: the dispatchers stop reading it.
            await operator.delete(API_VERSION, TRIGGER_PLURAL, "orders")

            async def withdrawn() -> bool:
                return await published() is None

            await eventually(withdrawn, message="the stream withdrawn")
    finally:
        await client.close()


async def test_a_stream_deleted_while_the_operator_was_down_is_withdrawn_at_start(
    cluster: Cluster, local_nats: LocalNats, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("HANSHU_NATS_URL", local_nats.url)
    client = await nats.connect(local_nats.url)
    buckets = await ensure_stream_buckets(client)
    gone = stream_entry("ns1", "gone", "hello", {"nats": {"stream": "ORDERS"}}, None, "")
    await buckets.catalog.put(gone.key, gone.encode())

    async def withdrawn() -> bool:
        try:
            await buckets.catalog.get(gone.key)
        except KeyNotFoundError:
            return True
        return False

    try:
        async with run_operator(cluster):
            await eventually(withdrawn, message="the deleted Trigger's stream withdrawn")
    finally:
        await client.close()
