"""The operator keeps the chart's warm pools: kopf against kmock (which runs no controllers:
the pool's ReplicaSet refilling is Kubernetes' part, checked in the e2e suite).

A pooled namespace gets the ``hanshu-pool`` Deployment, the token Secret and the
NetworkPolicy; every Function's status says whether the pool serves it and why not; a
specialized pod whose Function is gone is swept, one still serving a cold Function kept.
"""

from __future__ import annotations

import base64
import datetime
import json

import pytest
from hanshu_api import API_VERSION, FUNCTION_PLURAL
from hanshu_api.warm_pool import (
    ANNOTATION_SPECIALIZED_AT,
    LABEL_POOL,
    LABEL_POOL_STATE,
    LABEL_SPECIALIZED_FOR,
    POOL_ELIGIBLE,
    SECRET_ENV,
    pool_token,
)

from tests.support.helpers import eventually
from tests.support.operator_cluster import NAMESPACE, Cluster, run_operator

TOKEN = "internal-token-for-tests"
FUNCTIONS = f"{API_VERSION}/{FUNCTION_PLURAL}"


@pytest.fixture
def pooled(cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> Cluster:
    monkeypatch.setenv("HANSHU_WARM_POOLS", json.dumps({NAMESPACE: 2}))
    monkeypatch.setenv("HANSHU_INTERNAL_TOKEN", TOKEN)
    monkeypatch.setenv("HANSHU_GATEWAY_POD_LABELS", '{"app.kubernetes.io/name": "gw"}')
    return cluster


def function(name: str, **spec: object) -> dict[str, object]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Function",
        "metadata": {"name": name},
        "spec": {"handler": "index.hello", "code": {"inline": {"index.py": "x = 1\n"}}, **spec},
    }


def just_now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def specialized_pod(name: str, for_function: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "labels": {
                LABEL_POOL: "hanshu-pool",
                LABEL_POOL_STATE: "specialized",
                LABEL_SPECIALIZED_FOR: for_function,
            },
            "annotations": {ANNOTATION_SPECIALIZED_AT: just_now()},
        },
        "spec": {"containers": [{"name": "function", "image": "rt"}]},
    }


async def test_a_pooled_namespace_gets_its_pool(pooled: Cluster) -> None:
    async with run_operator(pooled):
        deployment = await eventually(
            lambda: pooled.object("apps/v1/deployments", "hanshu-pool"), message="the pool"
        )
        secret = pooled.object("v1/secrets", "hanshu-pool-token")
        policy = pooled.object("networking.k8s.io/v1/networkpolicies", "hanshu-pool")
    assert deployment["spec"]["replicas"] == 2
    template = deployment["spec"]["template"]["spec"]["containers"][0]
    assert template["image"] == "registry.example/hanshu/runtime:test"
    token = base64.b64decode(secret["data"]["token"]).decode()
    assert token == pool_token(TOKEN, NAMESPACE)
    assert policy["spec"]["ingress"][0]["from"][0]["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": "gw"
    }


async def test_every_function_says_whether_the_pool_serves_it(pooled: Cluster) -> None:
    await pooled.create(
        "v1",
        "secrets",
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"}, "data": {"pw": "eA=="}},
    )
    await pooled.create(API_VERSION, FUNCTION_PLURAL, function("eligible"))
    secret_env = [{"name": "PW", "valueFrom": {"secretKeyRef": {"name": "db", "key": "pw"}}}]
    await pooled.create(API_VERSION, FUNCTION_PLURAL, function("secretive", env=secret_env))
    async with run_operator(pooled):
        eligible = await eventually(
            lambda: pooled.condition(FUNCTIONS, "eligible", "PoolEligible"), message="eligible"
        )
        secretive = await eventually(
            lambda: pooled.condition(FUNCTIONS, "secretive", "PoolEligible"), message="secretive"
        )
        ready = await eventually(lambda: pooled.condition(FUNCTIONS, "secretive"))
    assert (eligible["status"], eligible["reason"]) == ("True", POOL_ELIGIBLE)
    assert (secretive["status"], secretive["reason"]) == ("False", SECRET_ENV)
    assert "Secret" in secretive["message"]
    # Not served by the pool is not a fault: the Function is Ready all the same.
    assert ready["status"] == "True", ready


async def test_specialized_pods_nobody_retired_are_swept(pooled: Cluster) -> None:
    await pooled.create(API_VERSION, FUNCTION_PLURAL, function("cold"))
    await pooled.create("v1", "pods", specialized_pod("serving-cold", "cold"))
    await pooled.create("v1", "pods", specialized_pod("orphan", "deleted-function"))
    async with run_operator(pooled):
        await eventually(lambda: not pooled.exists("v1/pods", "orphan"), message="the orphan swept")
        await eventually(lambda: pooled.condition(FUNCTIONS, "cold", "PoolEligible"))
        # Still serving a cold Function (no ready replica of its own, claimed just now).
        assert pooled.exists("v1/pods", "serving-cold")
