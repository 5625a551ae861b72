"""The gateway's internal paths take calls only from the platform: with the internal token
(the chart's Secret) set, a URL destination or a Function that reaches the internal port
cannot invoke, enqueue or dispatch to another namespace's Function."""

from __future__ import annotations

import aiohttp
from hanshu_gateway.catalog import Catalog
from hanshu_gateway.pipeline import Gateway, GatewayConfig

from tests.support.servers import free_port

TOKEN = "internal-s3cret-token"


async def test_the_internal_paths_need_the_platforms_token():
    internal = free_port()
    config = GatewayConfig(
        host="127.0.0.1", port=free_port(), internal_port=internal, internal_token=TOKEN
    )
    gateway = Gateway(config, Catalog(10, lambda namespace, trigger: None))
    await gateway.start()
    base = f"http://127.0.0.1:{internal}"
    try:
        async with aiohttp.ClientSession() as http:
            for path in (
                "/_hanshu/invoke/other/fn",
                "/_hanshu/enqueue/other/fn",
                "/_hanshu/dispatch/other/fn",
            ):
                for headers in ({}, {"X-Hanshu-Internal-Token": "guess"}):
                    async with http.post(f"{base}{path}", json={}, headers=headers) as reply:
                        assert reply.status == 401, path
                        assert (await reply.json())["errorType"] == "InvalidInternalToken"
                # With the token the call goes on (here to: no such Function).
                async with http.post(
                    f"{base}{path}", json={}, headers={"X-Hanshu-Internal-Token": TOKEN}
                ) as reply:
                    assert reply.status == 404, path
            # Health, readiness and metrics stay open to the kubelet and Prometheus.
            for path in ("/healthz", "/readyz", "/metrics"):
                async with http.get(f"{base}{path}") as reply:
                    assert reply.status == 200, path
    finally:
        await gateway.close()
