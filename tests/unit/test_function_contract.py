"""The function contract, written once: a replica's HANSHU_* environment is the same from
the operator (a pod) and the local platform (a process), and the runtime's own copies of
the handler form and the body limit agree with the shared ones."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import yaml
from hanshu_api import ADMIN_PORT, FUNCTION_PORT
from hanshu_api.function_contract import (
    HANDLER_PATTERN,
    HANDLER_PATTERN_SOURCE,
    MAX_BODY_BYTES,
    RESERVED_ENV_PREFIX,
)
from hanshu_api.models import HANDLER_PATTERN as MODEL_HANDLER_PATTERN
from hanshu_api.models import FunctionSpec, parse_function_spec
from hanshu_cli.local_nats import MAX_PAYLOAD_BYTES
from hanshu_cli.local_platform import replica_env
from hanshu_operator.builders import CODE_DIR, build_deployment
from hanshu_operator.config import OperatorConfig
from hanshu_runtime import lambda_env
from hanshu_runtime.config import DEFAULT_MAX_BODY_BYTES
from hanshu_runtime.config import config_from_env as runtime_config_from_env
from hanshu_runtime.context import FunctionInfo
from hanshu_runtime.faults import MalformedHandlerName
from hanshu_runtime.loader import parse_handler_ref

ROOT = Path(__file__).resolve().parents[2]
DEFAULTS = {"requests": {"cpu": "50m"}, "limits": {"memory": "512Mi"}}
# What only a local replica is told: a pod listens on every address and has Kubernetes'
# termination log, the runtime's defaults.
LOCAL_ONLY = {"HANSHU_HOST", "HANSHU_TERMINATION_LOG"}


def spec(**overrides: Any) -> FunctionSpec:
    raw = {
        "handler": "index.handler",
        "initializer": "index.init",
        "timeoutSeconds": 9,
        "concurrency": 3,
        "code": {"inline": {"index.py": "x"}},
        "env": [{"name": "GREETING", "value": "hi"}],
    }
    raw.update(overrides)
    return parse_function_spec(raw)


def cluster_env(function: FunctionSpec) -> dict[str, str]:
    """The pod's env as the kubelet resolves it (later entries win), the namespace from
    the downward API filled in."""
    config = OperatorConfig(runtime_image="rt:1", default_resources=DEFAULTS)
    deployment = build_deployment("f", "ns", function, config, "sum", None)
    entries = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    names = [e["name"] for e in entries]
    assert len(names) == len(set(names)), "server-side apply refuses a name twice"
    env = {e["name"]: e["value"] for e in entries if "value" in e}
    fields = {
        e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in entries if "valueFrom" in e
    }
    assert fields == {"HANSHU_NAMESPACE": "metadata.namespace"}
    return {**env, "HANSHU_NAMESPACE": "ns"}


def local_env(
    function: FunctionSpec,
    *,
    inherited: dict[str, str] | None = None,
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    return replica_env(
        ("ns", "f"),
        function,
        inherited=inherited or {},
        extra=extra or {},
        default_resources=DEFAULTS,
        code_dir=Path(CODE_DIR),
        port=FUNCTION_PORT,
        admin_port=ADMIN_PORT,
        termination_log=Path("/tmp/f.log"),  # a name: nothing is written
    )


def contract_of(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k.startswith(RESERVED_ENV_PREFIX)}


@pytest.mark.parametrize(
    "overrides",
    [{}, {"initializer": None}, {"resources": {"limits": {"memory": "1Gi"}}}],
    ids=["platform-memory", "no-initializer", "own-memory"],
)
def test_a_replica_is_told_the_same_in_a_cluster_and_locally(overrides: dict[str, Any]) -> None:
    function = spec(**overrides)
    in_cluster, local = cluster_env(function), local_env(function)
    assert set(contract_of(local)) - set(contract_of(in_cluster)) == LOCAL_ONLY
    assert {k: v for k, v in contract_of(local).items() if k not in LOCAL_ONLY} == contract_of(
        in_cluster
    )
    # The user's own variables reach the replica in both.
    assert in_cluster["GREETING"] == local["GREETING"] == "hi"


def test_memory_and_version_are_what_the_runtime_reports() -> None:
    """The memory through the platform defaults and the version, locally as in a cluster
    (the local platform used to leave out both)."""
    for env in (cluster_env(spec()), local_env(spec())):
        runtime = runtime_config_from_env(env)
        assert runtime.memory_mb == 512  # the platform's default limit, not 256
        assert runtime.function_version == "1"  # a Function's first generation
        assert (runtime.namespace, runtime.function_name) == ("ns", "f")
        assert runtime.initializer == "index.init"
        assert (runtime.timeout_seconds, runtime.drain_seconds) == (9, 9)
        assert runtime.concurrency == 3
    assert runtime_config_from_env(local_env(spec())).host == "127.0.0.1"


def test_the_user_env_cannot_override_the_contract_in_a_cluster_or_locally() -> None:
    # The CRD and the parser refuse reserved names; a spec that skipped both still cannot.
    with pytest.raises(ValueError, match="HANSHU_ are reserved"):
        spec(env=[{"name": "HANSHU_PORT", "value": "1"}])
    sneaky = dataclasses.replace(
        spec(),
        env=(
            {"name": "HANSHU_PORT", "value": "1"},
            {"name": "HANSHU_MEMORY_MB", "value": "100000"},
            {"name": "HANSHU_LOG_LEVEL", "value": "DEBUG"},
            {"name": "GREETING", "value": "hi"},
        ),
    )
    honest = spec()
    for build in (cluster_env, local_env):
        env = build(sneaky)
        assert env == build(honest)
        assert env["HANSHU_PORT"] == str(FUNCTION_PORT)
        assert env["HANSHU_MEMORY_MB"] == "512"
        assert "HANSHU_LOG_LEVEL" not in env


def test_locally_the_contract_wins_over_the_inherited_and_extra_env() -> None:
    env = local_env(
        spec(),
        inherited={"PATH": "/bin", "HANSHU_HANDLER": "other.handler"},
        extra={"AWS_REGION": "local", "HANSHU_PORT": "1"},
    )
    assert (env["PATH"], env["AWS_REGION"]) == ("/bin", "local")
    assert (env["HANSHU_HANDLER"], env["HANSHU_PORT"]) == ("index.handler", str(FUNCTION_PORT))


def test_the_runtime_body_limit_is_the_shared_one() -> None:
    # The runtime may not import hanshu_api: its copy must stay equal.
    assert DEFAULT_MAX_BODY_BYTES == MAX_BODY_BYTES
    assert runtime_config_from_env({"HANSHU_HANDLER": "a.b"}).max_body_bytes == MAX_BODY_BYTES
    values = yaml.safe_load((ROOT / "charts/hanshu/values.yaml").read_text())
    assert values["gateway"]["maxBodyBytes"] == MAX_BODY_BYTES
    # Dev mode's NATS stores an async body whole, with its headers.
    assert MAX_PAYLOAD_BYTES > MAX_BODY_BYTES


def test_the_handler_form_is_one_everywhere() -> None:
    assert MODEL_HANDLER_PATTERN.pattern == HANDLER_PATTERN_SOURCE
    crd = yaml.safe_load((ROOT / "crds/functions.hanshu.io.yaml").read_text())
    spec_schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    for field in ("handler", "initializer"):
        assert spec_schema["properties"][field]["pattern"] == HANDLER_PATTERN_SOURCE


def _runtime_accepts(handler: str) -> bool:
    try:
        parse_handler_ref(handler)
    except MalformedHandlerName:
        return False
    return True


@pytest.mark.parametrize(
    "handler",
    [
        "index.handler",
        "app:app",
        "app:server.app",
        "pkg.mod.handler",
        "pkg.mod:obj.attr",
        "a.b:c",
        "_private._fn",
        "handler",
        "index.",
        ".handler",
        "a:b:c",
        "a..b",
        "1mod.handler",
        "mod.1fn",
        "mod-x.handler",
        "index.handler ",
        "a:b.c:d",
        "a:",
        "",
    ],
)
def test_the_runtime_reads_the_handlers_the_platform_accepts(handler: str) -> None:
    """The runtime's own handler regexes (it imports nothing of ours) take exactly the
    names the shared pattern does, so no Function passes the CRD and fails to start."""
    assert _runtime_accepts(handler) == (HANDLER_PATTERN.match(handler) is not None)


def test_lambdas_variables_come_from_the_contract_and_never_replace_the_functions_own() -> None:
    # The platform's region reaches the pod as HANSHU_REGION; none is given by default.
    config = OperatorConfig(runtime_image="rt:1", default_resources=DEFAULTS)
    regional = build_deployment(
        "f", "ns", spec(), dataclasses.replace(config, function_region="eu-west-3"), "sum", None
    )
    entries = regional["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "HANSHU_REGION", "value": "eu-west-3"} in entries
    assert "HANSHU_REGION" not in cluster_env(spec())
    info = FunctionInfo("f", "index.handler", "3", 512, 9.0, "ns", "f-7d9-abc")
    env: dict[str, str] = {"HANSHU_REGION": "eu-west-3", "TZ": "Asia/Shanghai"}
    added = lambda_env.apply(env, info, "/code")
    assert env == {
        "HANSHU_REGION": "eu-west-3",
        "TZ": "Asia/Shanghai",  # the Function's own
        "AWS_LAMBDA_FUNCTION_NAME": "f",
        "AWS_LAMBDA_FUNCTION_VERSION": "3",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
        "AWS_LAMBDA_LOG_GROUP_NAME": "/hanshu/ns/f",
        "AWS_LAMBDA_LOG_STREAM_NAME": "f-7d9-abc",  # the pod: context.log_stream_name
        "LAMBDA_TASK_ROOT": "/code",
        "_HANDLER": "index.handler",
        "AWS_EXECUTION_ENV": lambda_env.EXECUTION_ENV,
        "AWS_REGION": "eu-west-3",
        "AWS_DEFAULT_REGION": "eu-west-3",
    }
    assert "TZ" not in added
    # One region for both names: the one the Function set; none at all without one.
    own = lambda_env.lambda_variables(info, "/code", {"AWS_DEFAULT_REGION": "ap-east-1"})
    assert own["AWS_REGION"] == "ap-east-1"
    bare = lambda_env.lambda_variables(info, "/code", {})
    assert not {"AWS_REGION", "AWS_DEFAULT_REGION"} & set(bare)
    assert bare["TZ"] == ":UTC"
