"""Warm pool pods against kmock: the pod objects the operator's ``hanshu-pool`` Deployment
would make (Ready, a pod IP of 127.0.0.1, container ports pointing at a real loopback
server), and that server: a stand-in for a pool runtime's admin port (SPECIALIZE_PATH,
checking the bearer token and parsing the body with hanshu_api's own parser) and its
function port (answering once specialized).

A stand-in until the runtime's pool mode (built beside this) is merged: the claim, the
token, the message and the failure handling are what these tests check.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from hanshu_api import FUNCTION_PORT
from hanshu_api.warm_pool import (
    LABEL_POOL,
    LABEL_POOL_STATE,
    POOL_STATE_AVAILABLE,
    SPECIALIZE_PATH,
    SpecializeInvalid,
    SpecializeRequest,
    pool_token,
)

from tests.support.servers import free_port, serving

POOL = "hanshu-pool"


@dataclass
class FakePoolRuntime:
    """What one pool pod was told, and how it answers the specialize call."""

    namespace: str
    internal_token: str
    answer: int = 200  # 500: a pod that fails to specialize
    received: list[SpecializeRequest] = field(default_factory=list)
    refused_tokens: int = 0
    admin_port: int = 0
    function_port: int = 0

    async def specialize(self, request: web.Request) -> web.Response:
        expected = f"Bearer {pool_token(self.internal_token, self.namespace)}"
        if request.headers.get("Authorization") != expected:
            self.refused_tokens += 1
            return web.Response(status=401, text="wrong pool token")
        try:
            parsed = SpecializeRequest.parse(await request.read())
        except SpecializeInvalid as bad:
            return web.Response(status=400, text=str(bad))
        if self.answer != 200:
            return web.Response(status=self.answer, text="the handler failed to import")
        if self.received:
            return web.Response(status=409, text="already specialized: one Function ever")
        self.received.append(parsed)
        return web.json_response({"function": parsed.function})

    async def call(self, request: web.Request) -> web.Response:
        if not self.received:
            return web.Response(status=503, text="not specialized")
        return web.Response(text=f"served by {self.received[0].function}")


@contextlib.asynccontextmanager
async def fake_pool_runtime(
    namespace: str, internal_token: str, answer: int = 200
) -> AsyncIterator[FakePoolRuntime]:
    runtime = FakePoolRuntime(namespace, internal_token, answer)
    admin, function = web.Application(), web.Application()
    admin.router.add_post(SPECIALIZE_PATH, runtime.specialize)
    function.router.add_route("*", "/{tail:.*}", runtime.call)
    async with serving(admin) as admin_port, serving(function) as function_port:
        runtime.admin_port, runtime.function_port = admin_port, function_port
        yield runtime


def pool_pod(
    name: str, namespace: str, admin_port: int, function_port: int = FUNCTION_PORT
) -> dict[str, Any]:
    """A Ready, available pool pod whose IP and ports reach a loopback server."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {LABEL_POOL: POOL, LABEL_POOL_STATE: POOL_STATE_AVAILABLE},
            # As the pool Deployment's ReplicaSet makes them: the gateway claims no other.
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": f"{POOL}-7d9f8c6b5",
                    "uid": "pool-replicaset",
                    "controller": True,
                }
            ],
        },
        "spec": {
            "containers": [
                {
                    "name": "function",
                    "image": "hanshu/runtime:dev",
                    "ports": [
                        {"name": "http", "containerPort": function_port},
                        {"name": "admin", "containerPort": admin_port},
                    ],
                }
            ]
        },
        "status": {
            "phase": "Running",
            "podIP": "127.0.0.1",
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def unused_port() -> int:
    """A port nothing listens on: a pod that refuses the specialize call."""
    return free_port()
