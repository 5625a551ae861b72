"""What an async invocation's function sees of its caller's headers, through the gateway,
JetStream, the dispatcher and the gateway again: the caller's Host, as a sync call does, and
never a reserved header the caller forged in either spelling."""

from __future__ import annotations

import json
import textwrap

from tests.support.async_platform import final_status
from tests.support.dev_platform import function, trigger

SHOW = textwrap.dedent("""
    def show(event, context):
        return {"headers": event["headers"], "id": context.invocation_id,
                "attempt": context.attempt}
""")


async def test_an_async_call_sees_the_callers_host_and_no_forged_header(async_platform, http):
    platform = async_platform([function("show", "show.show", SHOW), trigger("s", "show", path="/")])
    forged = {
        "Host": "shop.example.com",
        "X-Hanshu-Invocation-Type": "Async",
        "X_Hanshu_Invocation_Id": "forged",
        "X_Hanshu_Attempt": "7",
        "X_Forwarded_Host": "evil.example",
    }
    async with http.post(f"{platform.url}/a", json={}, headers=forged) as reply:
        assert reply.status == 202
        invocation_id = reply.headers["X-Hanshu-Invocation-Id"]
    record = await final_status(platform, invocation_id)
    assert record["state"] == "Succeeded", record
    seen = json.loads(record["result"]["body"])
    assert (seen["id"], seen["attempt"]) == (invocation_id, 1)
    headers = seen["headers"]
    assert headers["Host"] == "shop.example.com"  # not the replica's address
    assert headers["X-Forwarded-Host"] == "shop.example.com"
    assert "forged" not in json.dumps(headers)
    assert "evil" not in json.dumps(headers)
    assert not [name for name in headers if "_" in name], headers
