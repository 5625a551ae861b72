"""The invocation buckets on a real nats-server: created with direct gets, and a bucket an
older release made without them is switched over (the dispatcher reads a record before
every run; a direct get is answered without the JetStream API leader)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import nats
import pytest
from hanshu_api.invocations import STATUS_BUCKET
from hanshu_api.jetstream import StreamSettings, ensure
from hanshu_cli.local_nats import LocalNats
from nats.js.api import KeyValueConfig


@pytest.fixture
def local_nats(tmp_path: Path) -> Iterator[LocalNats]:
    server = LocalNats(store_dir=str(tmp_path / "nats")).start()
    yield server
    server.close()


async def test_a_new_bucket_has_direct_gets(local_nats: LocalNats) -> None:
    client = await nats.connect(local_nats.url)
    try:
        store = await ensure(client, StreamSettings())
        info = await store.js.stream_info(f"KV_{STATUS_BUCKET}")
        assert info.config.allow_direct
        await store.status.put("k", b"v")
        assert (await store.status.get("k")).value == b"v"
    finally:
        await client.close()


async def test_a_bucket_made_without_direct_gets_is_switched_over_keeping_its_records(
    local_nats: LocalNats,
) -> None:
    client = await nats.connect(local_nats.url)
    try:
        js = client.jetstream()
        old = await js.create_key_value(KeyValueConfig(bucket=STATUS_BUCKET, history=1))
        await old.put("kept", b"record")
        assert not (await js.stream_info(f"KV_{STATUS_BUCKET}")).config.allow_direct
        store = await ensure(client, StreamSettings())
        assert (await js.stream_info(f"KV_{STATUS_BUCKET}")).config.allow_direct
        assert (await store.status.get("kept")).value == b"record"
    finally:
        await client.close()
