"""API keys in a cluster: the gateway verifies keys against the salted hashes the operator
publishes as Secrets in the gateway's own namespace, follows them as they rotate, and reads
no Secret anywhere else (kmock records every request it made)."""

from __future__ import annotations

import base64

from hanshu_api.api_keys import SELECTOR, KeyVerifiers, published_secret_name
from hanshu_api.kube import path_for

from tests.support.helpers import eventually
from tests.support.kube_gateway import (
    CODE,
    NS,
    create,
    endpoint_slice,
    fetch,
    function,
    kube_client,
    published,
    running_gateway,
    status_is,
    trigger,
)

GATEWAY_NS = "hanshu-system"


async def test_keys_come_from_published_verifiers_in_the_gateway_namespace_only(
    kmock, tmp_path, runtime_factory
):
    runtime = runtime_factory(CODE, "handlers.echo")
    async with kube_client(kmock, tmp_path) as (kube, kubeconfig):
        await create(kube, function("echo"))
        await create(kube, endpoint_slice(runtime.port, True))
        auth = {"apiKeySecretRef": {"name": "keys"}}
        await create(kube, trigger("keyed", "echo", path="/keyed", auth=auth))
        # The user's Secret, where the Trigger lives: the operator's to read, not the gateway's.
        await create(
            kube,
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "keys", "namespace": NS},
                "data": {"api-key": base64.b64encode(b"s3cret").decode()},
            },
        )
        # Verifiers for the same Trigger published in another namespace count for nothing.
        await create(kube, published("elsewhere", NS, "keyed", "decoy-key"))
        async with running_gateway(
            kubeconfig, HANSHU_WATCH_NAMESPACES=NS, HANSHU_GATEWAY_NAMESPACE=GATEWAY_NS
        ) as (url, _):
            keyed = f"{url}/keyed"
            await eventually(lambda: status_is(keyed, 401), message="the keyed route, no key")
            status, body = await fetch(keyed, **{"X-API-Key": "s3cret"})
            assert status == 503, "nothing published yet"
            assert b"ApiKeysUnavailable" in body

            await create(kube, published(GATEWAY_NS, NS, "keyed", "s3cret"))
            await eventually(
                lambda: status_is(keyed, 200, **{"X-API-Key": "s3cret"}),
                timeout=5,
                message="the published key accepted",
            )
            status, body = await fetch(keyed, **{"X-API-Key": "decoy-key"})
            assert status == 403
            assert b"InvalidApiKey" in body

            # Rotation: the operator republishes; the watch event swaps the verifiers.
            secret = path_for("v1", "secrets", GATEWAY_NS, published_secret_name(NS, "keyed"))
            rotated = KeyVerifiers.of_keys(["n3w-key"]).encode()
            await kube.merge_patch(
                secret, {"data": {"verifiers": base64.b64encode(rotated.encode()).decode()}}
            )
            await eventually(
                lambda: status_is(keyed, 200, **{"X-API-Key": "n3w-key"}),
                timeout=5,
                message="the rotated key accepted within seconds",
            )
            assert await status_is(keyed, 403, **{"X-API-Key": "s3cret"})

            await kube.delete(secret)
            await eventually(
                lambda: status_is(keyed, 503, **{"X-API-Key": "n3w-key"}),
                timeout=5,
                message="no verifiers once unpublished",
            )

    # The test writes Secrets; every read is the gateway's: its namespace, its selector.
    reads = [r for r in kmock if "/secrets" in r.url.path and r.method.name == "GET"]
    assert reads, "the gateway never looked for published verifiers"
    for request in reads:
        assert request.url.path == f"/api/v1/namespaces/{GATEWAY_NS}/secrets", request.url
        assert request.url.query.get("labelSelector") == SELECTOR
