"""The warm pool's Kubernetes half, pure parts: the chart settings, the pool's manifests,
the PoolEligible condition, the sweep's verdict and the gateway's claim patch."""

from __future__ import annotations

import base64
import dataclasses
import datetime
import json
from typing import Any

import kubernetes_validate
import pytest
from hanshu_api import ADMIN_PORT, FUNCTION_PORT
from hanshu_api.models import parse_function_spec
from hanshu_api.pool_settings import WarmPoolSettings
from hanshu_api.settings import ConfigError
from hanshu_api.warm_pool import (
    ANNOTATION_SPECIALIZED_AT,
    LABEL_POOL,
    LABEL_POOL_STATE,
    NO_POOL,
    POOL_ELIGIBLE,
    POOL_MODE_ENV,
    POOL_TOKEN_ENV,
    RESOURCES_EXCEED_POOL,
    SECRET_ENV,
    pool_token,
)
from hanshu_gateway.kube_gateway import KubeGateway
from hanshu_gateway.kube_pool import KubeWarmPool, PoolPod, available_pod, claim_patch
from hanshu_operator.builders import build_deployment
from hanshu_operator.conditions import FALSE, TRUE, Condition
from hanshu_operator.config import OperatorConfig, config_from_env
from hanshu_operator.function_status import function_conditions, pool_condition
from hanshu_operator.pool_builders import (
    POOL_TOKEN_SECRET,
    available_selector,
    build_pool_deployment,
    build_pool_network_policy,
    build_pool_token_secret,
    pool_children,
)
from hanshu_operator.warm_pools import sweep_reason

TOKEN = "platform-internal-token"
POOLS = WarmPoolSettings(
    sizes={"team-a": 2},
    image="rt:1",
    resources={"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}},
)
CONFIG = OperatorConfig(
    runtime_image="rt:1",
    internal_token=TOKEN,
    warm_pools=POOLS,
    gateway_pod_labels={"app.kubernetes.io/name": "hanshu-gateway"},
)
INLINE = {"handler": "index.handler", "code": {"inline": {"index.py": "x"}}}


# -- settings ---------------------------------------------------------------------------


def test_settings_are_off_by_default() -> None:
    pools = WarmPoolSettings.from_env({}, "rt:1")
    assert not pools.enabled
    assert pools.shape("team-a") is None


def test_settings_read_sizes_image_and_resources() -> None:
    pools = WarmPoolSettings.from_env(
        {
            "HANSHU_INTERNAL_TOKEN": "t",
            "HANSHU_WARM_POOLS": '{"team-a": 3}',
            "HANSHU_WARM_POOL_RESOURCES": '{"requests": {"cpu": "1"}}',
        },
        "rt:1",
    )
    shape = pools.shape("team-a")
    assert shape is not None
    assert (shape.size, shape.image, dict(shape.resources)) == (
        3,
        "rt:1",
        {"requests": {"cpu": "1"}},
    )
    assert pools.shape("team-b") is None


def test_pool_resources_default_to_the_function_defaults() -> None:
    defaults = '{"requests": {"cpu": "50m"}}'
    pools = WarmPoolSettings.from_env(
        {
            "HANSHU_WARM_POOLS": '{"a": 1}',
            "HANSHU_INTERNAL_TOKEN": "t",
            "HANSHU_DEFAULT_RESOURCES": defaults,
        },
        "rt",
    )
    assert dict(pools.resources) == json.loads(defaults)


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("HANSHU_WARM_POOLS", '["team-a"]', "not a JSON object"),
        ("HANSHU_WARM_POOLS", '{"Team_A": 2}', "'Team_A', not a namespace name"),
        ("HANSHU_WARM_POOLS", '{"a": "two"}', "gives 'a' 'two', not a number"),
        ("HANSHU_WARM_POOLS", '{"a": 0}', "gives 'a' 0 pods"),
        ("HANSHU_WARM_POOL_RESOURCES", '{"requests": {"cpu": "lots"}}', "not a quantity"),
    ],
)
def test_bad_settings_name_the_variable(variable: str, value: str, named: str) -> None:
    env = {"HANSHU_WARM_POOLS": '{"a": 1}', "HANSHU_INTERNAL_TOKEN": "t", variable: value}
    with pytest.raises(ConfigError) as raised:
        WarmPoolSettings.from_env(env, "rt")
    assert str(raised.value).startswith(variable)
    assert named in str(raised.value)
    assert f"set {variable} to" in str(raised.value)


def test_a_pool_without_the_internal_token_is_refused() -> None:
    with pytest.raises(ConfigError, match="HANSHU_INTERNAL_TOKEN is unset"):
        config_from_env({"HANSHU_WARM_POOLS": '{"a": 1}'})
    with pytest.raises(ConfigError, match="HANSHU_INTERNAL_TOKEN is unset"):
        KubeGateway.from_env({"HANSHU_WARM_POOLS": '{"a": 1}', "KUBECONFIG": "/nonexistent"})
    config = config_from_env(
        {
            "HANSHU_WARM_POOLS": '{"a": 1}',
            "HANSHU_INTERNAL_TOKEN": "t",
            "HANSHU_GATEWAY_POD_LABELS": '{"app": "gw"}',
        }
    )
    assert config.warm_pools.sizes == {"a": 1}


def test_a_pool_without_the_gateway_pod_labels_is_refused() -> None:
    """Its NetworkPolicy admits the gateway by these labels: without them, every pod of
    the gateway's namespace could reach the specialize port."""
    with pytest.raises(ConfigError, match="HANSHU_GATEWAY_POD_LABELS is unset"):
        config_from_env({"HANSHU_WARM_POOLS": '{"a": 1}', "HANSHU_INTERNAL_TOKEN": "t"})


# -- the pool's manifests ---------------------------------------------------------------


def shape() -> Any:
    found = POOLS.shape("team-a")
    assert found is not None
    return found


def test_every_pool_object_is_valid_kubernetes() -> None:
    for child in pool_children("team-a", shape(), CONFIG):
        kubernetes_validate.validate(dict(child), "1.32", strict=True)


def test_pool_pods_are_as_restricted_as_function_pods() -> None:
    pool_pod = build_pool_deployment("team-a", shape(), CONFIG)["spec"]["template"]["spec"]
    function = parse_function_spec(INLINE)
    function_pod = build_deployment("f", "team-a", function, CONFIG, "sum", 1)["spec"]
    function_pod = function_pod["template"]["spec"]
    container = pool_pod["containers"][0]
    assert container["securityContext"] == function_pod["containers"][0]["securityContext"]
    assert pool_pod["securityContext"] == function_pod["securityContext"]
    assert pool_pod["automountServiceAccountToken"] is False
    assert "serviceAccountName" not in pool_pod  # the namespace's default one
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert [v["name"] for v in pool_pod["volumes"]] == ["tmp"]


def test_pool_pods_run_the_runtime_in_pool_mode_with_the_namespace_token() -> None:
    deployment = build_pool_deployment("team-a", shape(), CONFIG)
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    assert env[POOL_MODE_ENV]["value"] == "1"
    # From the Secret, never the internal token itself: user code will run in the pod.
    assert env[POOL_TOKEN_ENV]["valueFrom"]["secretKeyRef"]["name"] == POOL_TOKEN_SECRET
    assert TOKEN not in json.dumps(deployment)
    assert container["image"] == "rt:1"
    assert container["resources"] == dict(POOLS.resources)
    assert deployment["spec"]["replicas"] == 2
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": FUNCTION_PORT, "admin": ADMIN_PORT}


def test_pool_pods_export_spans_where_function_pods_do() -> None:
    def env_of(config: OperatorConfig) -> dict[str, Any]:
        deployment = build_pool_deployment("team-a", shape(), config)
        return {
            e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        }

    assert "OTEL_EXPORTER_OTLP_ENDPOINT" not in env_of(CONFIG)
    traced = dataclasses.replace(CONFIG, function_otlp_endpoint="http://collector:4318")
    assert env_of(traced)["OTEL_EXPORTER_OTLP_ENDPOINT"]["value"] == "http://collector:4318"


def test_a_claimed_pod_leaves_the_pools_selector() -> None:
    deployment = build_pool_deployment("team-a", shape(), CONFIG)
    selector = deployment["spec"]["selector"]["matchLabels"]
    template = deployment["spec"]["template"]["metadata"]["labels"]
    assert selector == available_selector()
    assert selector.items() <= template.items()
    claimed = {**template, LABEL_POOL_STATE: "specialized"}
    assert not selector.items() <= claimed.items()  # the ReplicaSet lets it go: a refill


def test_the_secret_holds_the_namespaces_pool_token() -> None:
    secret = build_pool_token_secret("team-a", TOKEN)
    token = base64.b64decode(secret["data"]["token"]).decode()
    assert token == pool_token(TOKEN, "team-a")
    assert token != pool_token(TOKEN, "team-b")


def test_only_the_gateway_reaches_pool_pods() -> None:
    policy = build_pool_network_policy("team-a", CONFIG)["spec"]
    assert policy["podSelector"]["matchLabels"] == {LABEL_POOL: "hanshu-pool"}
    [rule] = policy["ingress"]
    [source] = rule["from"]
    assert source["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "hanshu-gateway"}
    assert source["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "hanshu-system"
    }
    assert sorted(p["port"] for p in rule["ports"]) == sorted([FUNCTION_PORT, ADMIN_PORT])


# -- the PoolEligible condition ---------------------------------------------------------


def test_pool_eligible_says_true_for_an_inline_function_in_a_pooled_namespace() -> None:
    condition = pool_condition(INLINE, "team-a", POOLS, {})
    assert (condition.status, condition.reason) == (TRUE, POOL_ELIGIBLE)


@pytest.mark.parametrize(
    ("namespace", "extra", "reason"),
    [
        ("team-b", {}, NO_POOL),
        (
            "team-a",
            {"env": [{"name": "K", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]},
            SECRET_ENV,
        ),
        ("team-a", {"resources": {"requests": {"memory": "1Gi"}}}, RESOURCES_EXCEED_POOL),
        ("team-a", {"code": {"inline": {}}, "handler": 3}, "InvalidSpec"),
    ],
)
def test_pool_eligible_says_why_not(namespace: str, extra: dict[str, Any], reason: str) -> None:
    condition = pool_condition({**INLINE, **extra}, namespace, POOLS, {})
    assert (condition.status, condition.reason) == (FALSE, reason)
    assert condition.message


def test_pool_eligible_never_changes_ready() -> None:
    ok = Condition("X", TRUE, "Fine")
    not_pooled = pool_condition(INLINE, "team-b", POOLS, {})
    conditions = function_conditions(ok, ok, ok, ok, not_pooled)
    assert conditions[0].type == "Ready"
    assert conditions[0].status == TRUE
    assert conditions[-1] == not_pooled


# -- the sweep ----------------------------------------------------------------------------

NOW = datetime.datetime(2026, 12, 6, 12, 0, tzinfo=datetime.UTC)


def specialized(claimed_seconds_ago: float) -> dict[str, Any]:
    at = (NOW - datetime.timedelta(seconds=claimed_seconds_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"metadata": {"annotations": {ANNOTATION_SPECIALIZED_AT: at}}}


def test_the_sweep_keeps_a_pod_serving_a_cold_function() -> None:
    deployment = {"status": {"readyReplicas": 0}}
    assert sweep_reason(specialized(5), {"spec": {}}, deployment, NOW, 600) is None


@pytest.mark.parametrize(
    ("function", "deployment", "ago", "says"),
    [
        (None, None, 5, "no longer exists"),
        ({"spec": {}}, {"status": {"readyReplicas": 2}}, 5, "2 ready replica"),
        ({"spec": {}}, None, 601, "claimed over 600 s ago"),
    ],
)
def test_the_sweep_deletes_a_pod_nobody_retired(
    function: Any, deployment: Any, ago: float, says: str
) -> None:
    reason = sweep_reason(specialized(ago), function, deployment, NOW, 600)
    assert reason is not None
    assert says in reason


def test_a_pod_without_a_claim_time_is_judged_by_its_age() -> None:
    old = {"metadata": {"creationTimestamp": "2026-12-06T10:00:00Z"}}
    assert sweep_reason(old, {"spec": {}}, None, NOW, 600) is not None


# -- the gateway's claim ----------------------------------------------------------------


def pod(**status: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "p",
            "namespace": "team-a",
            "resourceVersion": "7",
            "labels": {LABEL_POOL: "hanshu-pool", LABEL_POOL_STATE: "available"},
            "ownerReferences": [
                {"kind": "ReplicaSet", "name": "hanshu-pool-5c7d", "controller": True}
            ],
        },
        "spec": {"containers": [{"ports": [{"name": "admin", "containerPort": 9999}]}]},
        "status": {
            "podIP": "10.0.0.5",
            "conditions": [{"type": "Ready", "status": "True"}],
            **status,
        },
    }


def test_only_ready_available_pods_with_an_ip_are_claimable() -> None:
    found = available_pod(pod())
    assert found == PoolPod("team-a", "p", "10.0.0.5", "7", FUNCTION_PORT, 9999)
    assert available_pod(pod(conditions=[{"type": "Ready", "status": "False"}])) is None
    assert available_pod(pod(podIP=None)) is None
    claimed = pod()
    claimed["metadata"]["labels"][LABEL_POOL_STATE] = "specialized"
    assert available_pod(claimed) is None


@pytest.mark.parametrize(
    "owners",
    [
        [],  # a pod someone made with the pool's labels copied
        [{"kind": "ReplicaSet", "name": "hanshu-pool-5c7d"}],  # not the controller
        [{"kind": "ReplicaSet", "name": "imposter-5c7d", "controller": True}],
        [{"kind": "Job", "name": "hanshu-pool-5c7d", "controller": True}],
    ],
)
def test_only_the_pools_own_pods_are_claimable(owners: list[dict[str, Any]]) -> None:
    copied = pod()
    copied["metadata"]["ownerReferences"] = owners
    assert available_pod(copied) is None


def test_the_claim_is_conditional_on_the_version_seen() -> None:
    found = available_pod(pod())
    assert found is not None
    patch = claim_patch(found, "hello", "uid-9", NOW)["metadata"]
    assert patch["resourceVersion"] == "7"
    assert patch["labels"] == {
        LABEL_POOL_STATE: "specialized",
        "hanshu.io/specialized-for": "hello",
    }
    assert patch["ownerReferences"][0]["uid"] == "uid-9"
    assert patch["annotations"][ANNOTATION_SPECIALIZED_AT] == "2026-12-06T12:00:00Z"


def test_a_pod_lost_to_another_gateway_is_not_offered_again_in_that_state() -> None:
    """A late or replayed watch event of the version another gateway claimed first must
    not send this gateway to patch it again (a second 409); a newer state may."""
    from hanshu_api.pool_settings import WarmPoolSettings as Settings

    pools = Settings.from_env(
        {"HANSHU_WARM_POOLS": '{"team-a": 1}', "HANSHU_INTERNAL_TOKEN": "t"}, "rt"
    )
    warm = KubeWarmPool(None, pools, "t", {})  # type: ignore[arg-type]
    seen = pod()
    warm.on_pod("ADDED", seen)
    found = warm._next_pod("team-a")
    assert found is not None
    warm._lost[("team-a", "p")] = found.resource_version  # what a 409 records
    warm.on_pod("MODIFIED", seen)  # the same version, seen again
    assert warm._next_pod("team-a") is None
    newer = pod()
    newer["metadata"]["resourceVersion"] = "8"  # available again, in a new state
    warm.on_pod("MODIFIED", newer)
    assert warm._next_pod("team-a") is not None
