"""Object storage Triggers on real servers: a moto S3 server whose bucket notifies the
gateway through SNS (as AWS does), MinIO-shaped webhook POSTs, the examples/thumbnails
pipeline in dev mode, and the token."""

from __future__ import annotations

import base64
import io
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from hanshu_cli.local_s3 import LocalS3
from PIL import Image

from tests.support.async_platform import async_function, get_json
from tests.support.helpers import eventually
from tests.support.object_storage import (
    TOKEN,
    TOKEN_SECRET,
    bucket_trigger,
    minio_body,
    minio_record,
)
from tests.support.servers import serving

ROOT = Path(__file__).resolve().parents[3]


async def test_a_minio_webhook_with_the_token_becomes_filtered_invocations(async_platform, http):
    platform = async_platform(
        [
            async_function("seen"),
            bucket_trigger(
                "photos",
                "seen",
                bucket="photos",
                events=["s3:ObjectCreated:*"],
                filter={"prefix": "in/", "suffix": ".jpg"},
                auth={"tokenSecretRef": {"name": "bucket-token"}},
            ),
            TOKEN_SECRET,
        ]
    )
    url = f"{platform.url}/_hanshu/events/default/photos"
    body = minio_body(
        minio_record("in/my+cat.jpg"),  # '+' is a space: the key is 'in/my cat.jpg'
        minio_record("in/notes.txt"),  # suffix does not match
        minio_record("out/dog.jpg"),  # prefix does not match
        minio_record("in/gone.jpg", "s3:ObjectRemoved:Delete"),  # event not chosen
        minio_record("in/other.jpg", bucket="elsewhere"),  # another bucket
    )
    # A bad token: 401 and nothing is stored.
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        async with http.post(url, data=body, headers=headers) as reply:
            assert reply.status == 401
            assert (await reply.json())["errorType"] == "InvalidToken"
    async with http.post(url, data=body, headers={"Authorization": f"Bearer {TOKEN}"}) as reply:
        assert reply.status == 200
        accepted = await reply.json()
    assert (accepted["accepted"], accepted["skipped"]) == (1, 4)
    # The same notification again (MinIO retries): the same invocation, run once.
    async with http.post(url, data=body, headers={"Authorization": f"Bearer {TOKEN}"}) as reply:
        assert (await reply.json())["invocationIds"] == accepted["invocationIds"]
    invocation_id = accepted["invocationIds"][0]
    _, record = await eventually(
        lambda: _final(platform, invocation_id), message="the object event ran"
    )
    assert record["invocationType"] == "Event"
    event = json.loads(record["result"]["body"])
    assert event["type"] == "Event"
    runs = [r for r in platform.runs() if r["what"] == "start"]
    assert [r["id"] for r in runs] == [invocation_id]  # only the chosen record, only once
    # The token also works as ?token= (an SNS endpoint URL) and as basic auth.
    async with http.post(f"{url}?token={TOKEN}", data=minio_body(minio_record("in/a.jpg"))) as r:
        assert (r.status, (await r.json())["accepted"]) == (200, 1)
    basic = {"Authorization": "Basic " + base64.b64encode(f"sns:{TOKEN}".encode()).decode()}
    async with http.post(url, data=minio_body(minio_record("in/b.jpg")), headers=basic) as r:
        assert (r.status, (await r.json())["accepted"]) == (200, 1)
    # What a bucket Trigger delivered is counted by outcome.
    async with http.get(f"{platform.internal_url}/metrics") as r:
        page = await r.text()
    counted = (
        'hanshu_gateway_object_events_total{namespace="default",outcome="%s",trigger="photos"}'
    )
    assert f"{counted % 'refused'} 2.0" in page
    assert f"{counted % 'skipped'} 8.0" in page  # 4 skipped, twice
    # Not a notification: 400 naming what is expected; an unknown Trigger: 404.
    async with http.post(url, data=b"[]", headers={"Authorization": f"Bearer {TOKEN}"}) as r:
        assert r.status == 400
    async with http.post(f"{platform.url}/_hanshu/events/default/nope", data=body) as r:
        assert r.status == 404


async def test_the_function_gets_the_record_in_either_format(async_platform, http):
    platform = async_platform(
        [
            async_function("s3-shape", handler="handlers.sink"),
            bucket_trigger("as-s3", "s3-shape", bucket="photos"),
            async_function("oss-shape", handler="handlers.sink"),
            bucket_trigger("as-oss", "oss-shape", bucket="photos", eventFormat="oss"),
        ]
    )
    for trigger in ("as-s3", "as-oss"):
        async with http.post(
            f"{platform.url}/_hanshu/events/default/{trigger}",
            data=minio_body(minio_record("in/my+cat%281%29.jpg")),
        ) as reply:
            assert (await reply.json())["accepted"] == 1
    sunk = await eventually(lambda: len(platform.sunk()) == 2 and platform.sunk())
    by_shape = {"Records" if "Records" in e else "events": e for e in sunk}
    s3 = by_shape["Records"]["Records"][0]
    # As MinIO sent it: Lambda code decodes it once (unquote_plus).
    assert s3["s3"]["object"]["key"] == "in/my+cat%281%29.jpg"
    assert s3["eventName"] == "s3:ObjectCreated:Put"
    oss = by_shape["events"]["events"][0]
    assert oss["eventName"] == "ObjectCreated:PutObject"
    assert oss["eventSource"] == "acs:oss"
    assert oss["oss"]["bucket"]["name"] == "photos"
    assert oss["oss"]["object"] == {
        "key": "in/my cat(1).jpg",  # the object's name, as Function Compute sends it
        "size": 2048,
        "eTag": "e1",
        "deltaSize": 2048,
    }


async def test_an_sns_subscription_is_confirmed_only_with_the_token(async_platform, http):
    confirmed: list[str] = []

    async def confirm(request: web.Request) -> web.Response:
        confirmed.append(request.query["Token"])
        return web.Response(text="<ConfirmSubscriptionResponse/>")

    app = web.Application()
    app.router.add_get("/", confirm)
    async with serving(app) as port:
        platform = async_platform(
            [
                async_function("seen"),
                bucket_trigger(
                    "photos",
                    "seen",
                    bucket="photos",
                    auth={"tokenSecretRef": {"name": "bucket-token"}},
                ),
                bucket_trigger("open", "seen", bucket="photos"),  # no token
                TOKEN_SECRET,
            ]
        )

        def confirmation(url: str) -> str:
            return json.dumps(
                {
                    "Type": "SubscriptionConfirmation",
                    "TopicArn": "arn:aws:sns:us-east-1:123456789012:photos",
                    "Token": "abc",
                    "SubscribeURL": url,
                }
            )

        local = f"http://127.0.0.1:{port}/?Action=ConfirmSubscription&Token=abc"
        events = f"{platform.url}/_hanshu/events/default"
        # Without a token on the Trigger, nobody may make the gateway fetch a URL.
        async with http.post(f"{events}/open", data=confirmation(local)) as reply:
            assert (reply.status, (await reply.json())["errorType"]) == (
                403,
                "ConfirmationRefused",
            )
        # With it, only SNS' own hosts (and, in dev mode, loopback) are fetched.
        metadata = "http://169.254.169.254/latest/meta-data/"
        async with http.post(
            f"{events}/photos?token={TOKEN}", data=confirmation(metadata)
        ) as reply:
            assert reply.status == 400
        async with http.post(f"{events}/photos?token={TOKEN}", data=confirmation(local)) as reply:
            assert reply.status == 200
            assert (await reply.json())["confirmed"] is True
    assert confirmed == ["abc"]


def _final(platform: Any, invocation_id: str) -> tuple[int, dict[str, Any]] | None:
    status, record = get_json(f"{platform.url}/_hanshu/invocations/{invocation_id}")
    return (status, record) if record.get("state") in ("Succeeded", "Failed") else None


@pytest.fixture
def thumbnails_dev(tmp_path: Path):
    """``hanshu dev examples/thumbnails`` as a user runs it."""
    from tests.support.servers import free_port

    port = free_port()
    log = (tmp_path / "dev.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-u", "-m", "hanshu_cli", "dev", str(ROOT / "examples/thumbnails"),
         "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    try:
        yield process, tmp_path / "dev.log"
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


async def test_the_thumbnails_example_makes_a_thumbnail_in_dev_mode(thumbnails_dev):
    process, log = thumbnails_dev
    found = re.compile(r"object storage \(S3\) at (http://127\.0\.0\.1:\d+), bucket photos")

    def storage_line() -> str | None:
        assert process.poll() is None, log.read_text()
        match = found.search(log.read_text())
        return match.group(1) if match else None

    endpoint = await eventually(storage_line, timeout=60, message="dev mode printed its S3")
    s3 = LocalS3(port=int(endpoint.rsplit(":", 1)[1])).client("s3")
    photo = io.BytesIO()
    Image.new("RGB", (640, 480), (200, 120, 40)).save(photo, format="JPEG")
    started = time.monotonic()
    s3.put_object(Bucket="photos", Key="in/cat.jpg", Body=photo.getvalue())

    def thumbnail() -> bytes | None:
        assert process.poll() is None, log.read_text()
        try:
            return s3.get_object(Bucket="photos", Key="thumbs/cat.jpg")["Body"].read()
        except s3.exceptions.NoSuchKey:
            return None

    made = await eventually(thumbnail, timeout=60, interval=0.1, message="thumbs/cat.jpg")
    with Image.open(io.BytesIO(made)) as image:
        assert max(image.size) == 128
        assert image.size == (128, 96)  # the aspect ratio kept
    assert time.monotonic() - started < 60
