"""The warm pool's shared contract: eligibility reasons, the specialize message, the token."""

from __future__ import annotations

from typing import Any

import pytest
from hanshu_api import warm_pool
from hanshu_api.function_spec import parse_function_spec
from hanshu_api.warm_pool import PoolShape, SpecializeInvalid, SpecializeRequest

POOL = PoolShape(
    image="hanshu/runtime:dev",
    resources={"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
    size=2,
)


def spec(**extra: Any) -> Any:
    return parse_function_spec(
        {"handler": "index.handler", "code": {"inline": {"index.py": "x = 1"}}, **extra}
    )


def test_inline_code_with_plain_env_is_eligible() -> None:
    verdict = warm_pool.pool_eligibility(spec(env=[{"name": "A", "value": "1"}]), POOL, {})
    assert verdict.eligible
    assert verdict.reason == warm_pool.POOL_ELIGIBLE


@pytest.mark.parametrize(
    ("extra", "pool", "reason"),
    [
        ({}, None, warm_pool.NO_POOL),
        ({"code": {"image": "me/app:1"}}, POOL, warm_pool.IMAGE_CODE),
        (
            {"env": [{"name": "K", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]},
            POOL,
            warm_pool.SECRET_ENV,
        ),
        ({"envFrom": [{"secretRef": {"name": "s"}}]}, POOL, warm_pool.SECRET_ENV),
        ({"envFrom": [{"configMapRef": {"name": "c"}}]}, POOL, warm_pool.REFERENCED_ENV),
        (
            {"env": [{"name": "K", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}}}]},
            POOL,
            warm_pool.REFERENCED_ENV,
        ),
        ({"serviceAccountName": "robot"}, POOL, warm_pool.OWN_SERVICE_ACCOUNT),
        ({"nodeSelector": {"gpu": "yes"}}, POOL, warm_pool.NODE_PLACEMENT),
        (
            {"resources": {"limits": {"memory": "1Gi"}}},
            POOL,
            warm_pool.RESOURCES_EXCEED_POOL,
        ),
        ({"resources": {"requests": {"cpu": "2"}}}, POOL, warm_pool.RESOURCES_EXCEED_POOL),
    ],
)
def test_what_a_running_pod_cannot_gain_is_ineligible_with_its_reason(
    extra: dict[str, Any], pool: PoolShape | None, reason: str
) -> None:
    verdict = warm_pool.pool_eligibility(spec(**extra), pool, {})
    assert not verdict.eligible
    assert verdict.reason == reason
    assert verdict.message


def test_specialize_request_round_trips() -> None:
    env = warm_pool.specialize_env(
        "hello",
        "shop",
        spec(env=[{"name": "GREETING", "value": "hi"}]),
        generation=3,
        default_resources={},
        code_dir="/tmp/code",
    )
    request = SpecializeRequest("shop", "hello", 3, env, {"index.py": "x = 1"})
    parsed = SpecializeRequest.parse(request.encode())
    assert parsed == request
    assert parsed.env["GREETING"] == "hi"
    assert parsed.env["HANSHU_FUNCTION_NAME"] == "hello"
    assert parsed.env["HANSHU_NAMESPACE"] == "shop"


@pytest.mark.parametrize(
    ("raw", "names"),
    [
        (b"not json", "JSON"),
        (b"[]", "object"),
        (b'{"namespace":"","function":"f","generation":1,"env":{},"files":{}}', "namespace"),
        (b'{"namespace":"n","function":"f","generation":0,"env":{},"files":{}}', "generation"),
        (b'{"namespace":"n","function":"f","generation":1,"env":{"A":1},"files":{}}', "env"),
        (b'{"namespace":"n","function":"f","generation":1,"env":{},"files":{}}', "HANSHU_HANDLER"),
        (
            b'{"namespace":"n","function":"f","generation":1,'
            b'"env":{"HANSHU_HANDLER":"i.h"},"files":{"../x.py":""}}',
            "file name",
        ),
        (b"{" + b" " * warm_pool.MAX_SPECIALIZE_BYTES + b"}", "bytes"),
    ],
)
def test_a_bad_specialize_request_is_refused_naming_the_field(raw: bytes, names: str) -> None:
    with pytest.raises(SpecializeInvalid, match=names):
        SpecializeRequest.parse(raw)


def test_pool_tokens_differ_per_namespace_and_compare_in_constant_time() -> None:
    shop, lab = warm_pool.pool_token("secret", "shop"), warm_pool.pool_token("secret", "lab")
    assert shop != lab
    assert warm_pool.token_matches(shop, warm_pool.pool_token("secret", "shop"))
    assert not warm_pool.token_matches(shop, lab)


def test_a_specialized_pod_is_told_the_platforms_region_as_the_functions_own_pods() -> None:
    def env(**region: str) -> dict[str, str]:
        return warm_pool.specialize_env(
            "hello", "shop", spec(), generation=1, default_resources={}, code_dir="/c", **region
        )

    assert env(region="eu-west-3")["HANSHU_REGION"] == "eu-west-3"
    assert "HANSHU_REGION" not in env()
