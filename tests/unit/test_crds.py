"""The CRDs as a kube-apiserver would see them: structural, documented, defaulting, and
with CEL rules that accept good objects and reject each bad shape with a clear message.
Every file under examples/ must be admitted."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from hanshu_api import models, versions

from tests.crd_schema import ROOT, admit, load_crds, schema_of, structural_problems

CRDS = load_crds()
EXAMPLES = sorted((ROOT / "examples").rglob("*.yaml"))


@pytest.mark.parametrize("kind", sorted(CRDS))
def test_crd_is_structural_and_documented(kind: str):
    crd = CRDS[kind]
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["spec"]["group"] == "hanshu.io"
    version = crd["spec"]["versions"][0]
    assert version["name"] == "v1alpha1"
    assert version["subresources"] == {"status": {}}
    assert "hanshu" in crd["spec"]["names"]["categories"]
    assert structural_problems(schema_of(crd)) == []


def test_printer_columns():
    def columns(kind: str) -> list[str]:
        return [
            c["name"]
            for c in CRDS[kind]["spec"]["versions"][0]["additionalPrinterColumns"]
            if c.get("priority", 0) == 0
        ]

    assert columns("Function") == [
        "Ready",
        "Reason",
        "Replicas",
        "URL",
        "Version",
        "Aliases",
        "Age",
    ]
    assert columns("Trigger") == ["Function", "Type", "Ready", "URL", "Age"]
    assert columns("FunctionVersion") == ["Function", "Version", "Age"]
    assert CRDS["FunctionVersion"]["spec"]["names"]["shortNames"] == ["fnv"]
    assert CRDS["Function"]["spec"]["names"]["shortNames"] == ["fn"]
    assert CRDS["Trigger"]["spec"]["names"]["shortNames"] == ["trg"]


def test_structural_check_catches_a_missing_description():
    schema = copy.deepcopy(schema_of(CRDS["Function"]))
    del schema["properties"]["spec"]["properties"]["handler"]["description"]
    del schema["properties"]["spec"]["properties"]["concurrency"]["type"]
    problems = structural_problems(schema)
    assert "spec.handler: no description (kubectl explain shows it)" in problems
    assert "spec.concurrency: no type" in problems


def test_structural_check_allows_only_name_restrictions_on_root_metadata():
    schema = copy.deepcopy(schema_of(CRDS["Function"]))
    metadata = schema["properties"]["metadata"]
    assert structural_problems(schema) == []
    metadata["properties"]["labels"] = {"type": "object"}
    del metadata["properties"]["generateName"]
    problems = structural_problems(schema)
    assert "metadata.labels: only name and generateName may be restricted" in problems
    assert any("declare both name and generateName" in p for p in problems)


def _documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


@pytest.mark.parametrize("path", EXAMPLES, ids=[str(p.relative_to(ROOT)) for p in EXAMPLES])
def test_every_example_is_admitted(path: Path):
    for document in _documents(path):
        if document["apiVersion"].startswith("hanshu.io/"):
            _, errors = admit(document, CRDS)
            assert errors == [], f"{path}: {document['metadata']['name']}"
            # ... and the operator's own parser accepts what the apiserver admitted.
            defaulted, _ = admit(document, CRDS)
            if document["kind"] == "Function":
                models.parse_function_spec(defaulted["spec"])
            elif document["kind"] == "FunctionVersion":
                # A snapshot runs as a Function would: its template must parse, and its
                # digest be the template's (what hanshu publish would have written).
                template = defaulted["spec"]["template"]
                models.parse_function_spec(template)
                assert defaulted["spec"]["digest"] == versions.spec_digest(template)
            else:
                models.parse_trigger_spec(defaulted["spec"], "default")


def test_inline_example_code_matches_its_python_file():
    for yaml_path, py_name in (
        ("hello/function.yaml", "hello/index.py"),
        ("scheduled/function.yaml", "scheduled/report.py"),
        ("configmap-watch/function.yaml", "configmap-watch/watch.py"),
    ):
        function = next(
            d for d in _documents(ROOT / "examples" / yaml_path) if d["kind"] == "Function"
        )
        inline = function["spec"]["code"]["inline"]
        assert list(inline.values()) == [(ROOT / "examples" / py_name).read_text()]


def test_function_defaults_match_the_models():
    defaulted, errors = admit(
        {
            "apiVersion": "hanshu.io/v1alpha1",
            "kind": "Function",
            "metadata": {"name": "f"},
            "spec": {"handler": "index.handler", "code": {"inline": {"index.py": ""}}},
        }
    )
    assert errors == []
    spec = defaulted["spec"]
    parsed = models.parse_function_spec(
        {"handler": "index.handler", "code": {"inline": {"index.py": ""}}}
    )
    assert spec["handlerType"] == parsed.handler_type == "event"
    assert spec["timeoutSeconds"] == parsed.timeout_seconds
    assert spec["concurrency"] == parsed.concurrency
    scaling = spec["scaling"]
    assert scaling["minReplicas"] == parsed.scaling.min_replicas
    assert scaling["maxReplicas"] == parsed.scaling.max_replicas
    assert scaling["targetConcurrency"] == parsed.scaling.target_concurrency
    assert scaling["scaleToZeroGracePeriod"] == models.DEFAULT_SCALE_TO_ZERO_GRACE
    assert scaling["scaleDownDelay"] == models.DEFAULT_SCALE_DOWN_DELAY


def _function(**spec: Any) -> dict[str, Any]:
    base = {"handler": "index.handler", "code": {"inline": {"index.py": "x = 1\n"}}}
    base.update(spec)
    return {
        "apiVersion": "hanshu.io/v1alpha1",
        "kind": "Function",
        "metadata": {"name": "f"},
        "spec": base,
    }


BAD_FUNCTIONS = [
    (_function(code={}), "code must have exactly one of inline, configMap or image"),
    (
        _function(code={"inline": {"a.py": ""}, "image": "x"}),
        "code must have exactly one of inline, configMap or image",
    ),
    (_function(handler="index"), "spec.handler: 'index' does not match"),
    (_function(handler="index.handler()"), "spec.handler: 'index.handler()' does not match"),
    (_function(handlerType="cgi"), "spec.handlerType: 'cgi' is not one of"),
    (
        _function(scaling={"minReplicas": 5, "maxReplicas": 2}),
        "scaling.minReplicas must not be greater than scaling.maxReplicas",
    ),
    (
        _function(scaling={"scaleToZeroGracePeriod": "30 seconds"}),
        "spec.scaling.scaleToZeroGracePeriod: '30 seconds' does not match",
    ),
    (_function(timeoutSeconds=0), "spec.timeoutSeconds: 0 is below the minimum 1"),
    (_function(concurrency=5000), "spec.concurrency: 5000 is above the maximum 1000"),
    (
        _function(code={"inline": {"../etc/passwd": ""}}),
        "inline file names must be plain file names",
    ),
    (
        _function(env=[{"name": "HANSHU_HANDLER", "value": "x"}]),
        "env names starting with HANSHU_ are reserved",
    ),
    (
        _function(env=[{"name": "A", "value": "1", "valueFrom": {"secretKeyRef": {"name": "s"}}}]),
        "an env entry takes value or valueFrom, not both",
    ),
    (_function(timeout=30), "spec.timeout: unknown field"),
    (dict(_function(), metadata={"name": "Hello_World"}), "a Function's name must be a DNS label"),
    (dict(_function(), metadata={"name": "a" * 64}), "a Function's name must be a DNS label"),
    (dict(_function(), metadata={"name": "api-v2"}), "must not end in -v and a number"),
    (dict(_function(), metadata={"name": "a" * 254}), "metadata.name: longer than 253"),
]


@pytest.mark.parametrize(("obj", "message"), BAD_FUNCTIONS, ids=[m[:40] for _, m in BAD_FUNCTIONS])
def test_bad_functions_are_rejected_with_a_clear_message(obj: dict[str, Any], message: str):
    _, errors = admit(obj, CRDS)
    assert any(message in error for error in errors), errors


def _trigger(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "hanshu.io/v1alpha1",
        "kind": "Trigger",
        "metadata": {"name": "t"},
        "spec": {"functionRef": {"name": "f"}, **spec},
    }


ONE_SOURCE = (
    "a Trigger must have exactly one source: http, schedule, objectStorage, stream or kubernetes"
)
BAD_TRIGGERS = [
    (_trigger(), ONE_SOURCE),
    (_trigger(http={}, schedule={"cron": "@daily"}), ONE_SOURCE),
    (_trigger(schedule={"cron": "every day"}), "cron must have five fields"),
    (_trigger(schedule={"cron": "* * * *"}), "cron must have five fields"),
    (_trigger(schedule={"cron": "@midnight"}), "cron must have five fields"),
    (_trigger(schedule={"cron": "60 * * * *"}), "each cron field must be *, a number or name"),
    (_trigger(schedule={"cron": "0 0 * * JAN"}), "each cron field must be *, a number or name"),
    (_trigger(http={"path": "no-slash"}), "spec.http.path: 'no-slash' does not match"),
    (_trigger(http={"methods": ["FETCH"]}), "'FETCH' is not one of"),
    (_trigger(http={"rateLimit": {"requestsPerSecond": 0}}), "is below the minimum 0"),
    (
        _trigger(http={"cors": {"allowOrigins": ["*"], "allowCredentials": True}}),
        "cors.allowCredentials cannot be combined with allowOrigins '*'",
    ),
    (_trigger(http={"auth": {}}), "apiKeySecretRef: Required value"),
]


@pytest.mark.parametrize(("obj", "message"), BAD_TRIGGERS, ids=[m[:40] for _, m in BAD_TRIGGERS])
def test_bad_triggers_are_rejected_with_a_clear_message(obj: dict[str, Any], message: str):
    _, errors = admit(obj, CRDS)
    assert any(message in error for error in errors), errors


@pytest.mark.parametrize(
    "cron", ["*/5 * * * *", "0 9 * * MON-FRI", "@hourly", "30 2 1,15 * *", "0 0 * JAN,JUL SUN"]
)
def test_good_crons_are_admitted(cron: str):
    _, errors = admit(_trigger(schedule={"cron": cron}), CRDS)
    assert errors == []


def test_reference_docs_are_generated_from_the_current_crds():
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "gen_reference", ROOT / "hack" / "gen_reference.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for target, text in module.generate().items():
        assert target.exists(), f"{target} is missing: run `make docs`"
        assert target.read_text() == text, f"{target} is stale: run `make docs`"
