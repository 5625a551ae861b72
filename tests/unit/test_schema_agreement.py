"""The CRDs (what the apiserver admits) and hanshu_api's parsers (what the operator, the
gateway and dev mode accept) say the same: the CRDs are generated from the parsers'
constants (hack/gen_crds.py), and these tables try each rule at and beyond its bounds with
both. A value only one side may judge (a duration's range, a time zone's existence, a
backwards cron range) is listed apart, so the gap is written down, not discovered."""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest
from hanshu_api import models
from hanshu_api.cron import MACRO_NAMES, CronError, parse_cron

from tests.crd_schema import ROOT, admit, load_crds

CRDS = load_crds()


def _gen_crds() -> Any:
    spec = importlib.util.spec_from_file_location("gen_crds", ROOT / "hack" / "gen_crds.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_regenerating_the_crds_changes_nothing_and_the_chart_has_the_same_files():
    files = _gen_crds().generate()
    assert {p.parent for p in files} == {ROOT / "crds", ROOT / "charts" / "hanshu" / "crds"}
    for target, text in files.items():
        assert target.exists(), f"{target} is missing: run `make crds`"
        assert target.read_text() == text, f"{target} is stale: edit crds/source/, `make crds`"
    for name in ("functions.hanshu.io.yaml", "triggers.hanshu.io.yaml"):
        top = (ROOT / "crds" / name).read_bytes()
        assert top == (ROOT / "charts" / "hanshu" / "crds" / name).read_bytes()
    committed = {p.name for p in (ROOT / "crds").glob("*.yaml")}
    assert committed == {p.name for p in files}, "a CRD in crds/ has no source in crds/source/"


def test_a_placeholder_that_names_no_constant_is_refused():
    gen = _gen_crds()
    with pytest.raises(AttributeError):
        gen.render("maximum: {{ function_spec.NO_SUCH_BOUND }}\n", "x.yaml.in")
    with pytest.raises(ValueError, match="cannot go inside a quoted string"):
        gen.render('rule: "{{ text: function_spec.HANDLER_PATTERN }}"\n', "x.yaml.in")
    assert "maximum: 3600\n" in gen.render(
        "maximum: {{ function_spec.TIMEOUT_SECONDS.maximum }}\n", "x.yaml.in"
    )


def test_the_models_module_still_exports_every_name_it_did_before_the_split():
    before_split = [
        "ApiKeyAuth",
        "AsyncPolicy",
        "Code",
        "Cors",
        "DEFAULT_CONCURRENCY",
        "DEFAULT_MAX_EVENT_AGE",
        "DEFAULT_MAX_REPLICAS",
        "DEFAULT_MAX_RETRY_ATTEMPTS",
        "DEFAULT_MEMORY_MB",
        "DEFAULT_MIN_REPLICAS",
        "DEFAULT_OBJECT_EVENTS",
        "DEFAULT_SCALE_DOWN_DELAY",
        "DEFAULT_SCALE_TO_ZERO_GRACE",
        "DEFAULT_TARGET_CONCURRENCY",
        "DEFAULT_TIMEOUT_SECONDS",
        "Destination",
        "FILE_NAME_PATTERN",
        "FunctionSpec",
        "HANDLER_PATTERN",
        "HANDLER_TYPES",
        "HTTP_METHODS",
        "HttpRoute",
        "MAX_EVENT_AGE_SECONDS",
        "MAX_RETRY_ATTEMPTS",
        "MIN_EVENT_AGE_SECONDS",
        "NatsSource",
        "OBJECT_EVENT_FORMATS",
        "OBJECT_EVENT_PATTERN",
        "ObjectStorage",
        "RateLimit",
        "RedisSource",
        "STREAM_NAME_PATTERN",
        "SUBJECT_FILTER_PATTERN",
        "SUBJECT_PATTERN",
        "Scaling",
        "Schedule",
        "SecretKeyRef",
        "SpecInvalid",
        "StreamSource",
        "TRIGGER_SOURCES",
        "TriggerSpec",
        "module_of",
        "parse_function_spec",
        "parse_trigger_spec",
    ]
    assert [name for name in before_split if not hasattr(models, name)] == []
    assert sorted(models.__all__) == sorted(before_split)


# --- cron: the parser and the CRD's rule ---------------------------------------------------

FIELD_TOKENS = [
    "*", "*/5", "*/0", "*/05", "0", "05", "007", "7", "8", "12", "13", "23", "24", "31", "32",
    "59", "60", "1-5", "1-5/2", "5/10", "1,2", "1,,2", ",1", "1-", "-1", "*-3", "1/2/3",
    "JAN", "jan", "Dec", "JAN-MAR", "MON", "mon-fri", "SUN,SAT", "FOO", "MONDAY", "٣", "½",
]  # fmt: skip
WHOLE_CRONS = [
    *MACRO_NAMES, "@midnight", "@DAILY", "@reboot", "@every 5m", "daily", "", " @daily",
    "* * * *", "* * * * * *", " */5 * * * *", "*/5 * * * * ", "*/5  *  * * *", "*/5\t* * * *",
    "0 0 30 2 *",  # never fires, but it parses: the operator says so when it computes the time
]  # fmt: skip
# What a pattern cannot see, so only the parser refuses it (the Trigger's status says why).
ONLY_THE_PARSER_REFUSES = ["5-1 * * * *", "* * * * FRI-MON", "0 0 * DEC-JAN *"]


def _crons() -> list[str]:
    crons = list(WHOLE_CRONS)
    for position in range(5):
        for token in FIELD_TOKENS:
            fields = ["*"] * 5
            fields[position] = token
            crons.append(" ".join(fields))
    return crons


def _parser_accepts(cron: str) -> bool:
    try:
        parse_cron(cron)
    except CronError:
        return False
    return True


def _crd_admits(trigger_spec: dict[str, Any]) -> bool:
    _, errors = admit(
        {
            "apiVersion": "hanshu.io/v1alpha1",
            "kind": "Trigger",
            "metadata": {"name": "t"},
            "spec": {"functionRef": {"name": "f"}, **trigger_spec},
        },
        CRDS,
    )
    return errors == []


def test_the_crd_admits_exactly_the_crons_the_parser_accepts():
    crons = _crons()
    disagree = [
        (cron, _parser_accepts(cron), _crd_admits({"schedule": {"cron": cron}}))
        for cron in crons
        if _parser_accepts(cron) != _crd_admits({"schedule": {"cron": cron}})
    ]
    assert disagree == [], "(cron, parser accepts, CRD admits)"
    # The table holds both verdicts in numbers, so it tests something either way.
    accepted = [cron for cron in crons if _parser_accepts(cron)]
    assert 60 < len(accepted) < len(crons) - 60
    assert "@daily" in accepted
    assert "@midnight" not in accepted  # issue 25: the parser took it, the CRD refused it


@pytest.mark.parametrize("cron", ONLY_THE_PARSER_REFUSES)
def test_a_backwards_range_is_left_to_the_parser(cron: str):
    assert _crd_admits({"schedule": {"cron": cron}})
    assert not _parser_accepts(cron)


# --- every other rule: values at and beyond each bound, judged by both ----------------------

FUNCTION = {"handler": "index.handler", "code": {"inline": {"index.py": ""}}}


def _files(count: int) -> dict[str, str]:
    return {"index.py": "", **{f"m{i}.py": "" for i in range(count - 1)}}


def _function(**changes: Any) -> dict[str, Any]:
    return {**FUNCTION, **changes}


def _alias(**alias: Any) -> dict[str, Any]:
    return _function(aliases=[{"name": "live", "version": 1, **alias}])


def _destination(**destination: str) -> dict[str, Any]:
    return _function(**{"async": {"destinations": {"onFailure": destination}}})


def _http(**route: Any) -> dict[str, Any]:
    return {"http": route}


def _kube(**source: Any) -> dict[str, Any]:
    return {"kubernetes": {"apiVersion": "v1", "kind": "ConfigMap", **source}}


def _bucket(**storage: Any) -> dict[str, Any]:
    return {"objectStorage": {"bucket": "photos", **storage}}


def _nats(**source: Any) -> dict[str, Any]:
    return {"stream": {"nats": {"stream": "orders", **source}}}


def _stream(**settings: Any) -> dict[str, Any]:
    return {"stream": {"nats": {"stream": "orders"}, **settings}}


FUNCTION_CASES: list[tuple[str, dict[str, Any], bool]] = [
    ("handler module.function", _function(handler="index.handler"), True),
    ("handler module:object", _function(handler="index:app"), True),
    ("handler without a function", _function(handler="index"), False),
    ("handler of 253", _function(handler="index." + "h" * 247), True),
    ("handler of 254", _function(handler="index." + "h" * 248), False),
    ("handlerType asgi", _function(handlerType="asgi"), True),
    ("handlerType cgi", _function(handlerType="cgi"), False),
    ("64 inline files", _function(code={"inline": _files(64)}), True),
    ("65 inline files", _function(code={"inline": _files(65)}), False),
    ("a file name with /", _function(code={"inline": {"index.py": "", "a/b.py": ""}}), False),
    ("env HANSHU_", _function(env=[{"name": "HANSHU_X", "value": "1"}]), False),
    (
        "env value and valueFrom",
        _function(env=[{"name": "A", "value": "1", "valueFrom": {"fieldRef": {}}}]),
        False,
    ),
    ("alias on a version", _function(aliases=[{"name": "live", "version": 1}]), True),
    ("alias named Live", _function(aliases=[{"name": "Live", "version": 1}]), False),
    ("alias without a version", _function(aliases=[{"name": "live"}]), False),
    ("alias on version 0", _function(aliases=[{"name": "live", "version": 0}]), False),
    ("alias split 10%", _alias(additionalVersion=2, additionalWeight=10), True),
    ("alias split 99%", _alias(additionalVersion=2, additionalWeight=99), True),
    ("alias split 100%", _alias(additionalVersion=2, additionalWeight=100), False),
    ("alias split 0%", _alias(additionalVersion=2, additionalWeight=0), False),
    ("alias split without a weight", _alias(additionalVersion=2), False),
    ("alias split onto itself", _alias(additionalVersion=1, additionalWeight=10), False),
    ("alias weight without a version", _alias(additionalWeight=10), False),
    (
        "alias canary",
        _alias(additionalVersion=2, canary={"steps": [10, 50, 100], "interval": "1m"}),
        True,
    ),
    (
        "alias canary of 11 steps",
        _alias(additionalVersion=2, canary={"steps": [*range(1, 12)]}),
        False,
    ),
    ("alias canary step 0", _alias(additionalVersion=2, canary={"steps": [0, 50]}), False),
    ("alias canary step 101", _alias(additionalVersion=2, canary={"steps": [50, 101]}), False),
    (
        "alias canary interval soon",
        _alias(additionalVersion=2, canary={"steps": [5], "interval": "soon"}),
        False,
    ),
    ("17 aliases", _function(aliases=[{"name": f"a{i}", "version": 1} for i in range(17)]), False),
    ("timeoutSeconds 0", _function(timeoutSeconds=0), False),
    ("timeoutSeconds 1", _function(timeoutSeconds=1), True),
    ("timeoutSeconds 3600", _function(timeoutSeconds=3600), True),
    ("timeoutSeconds 3601", _function(timeoutSeconds=3601), False),
    ("timeoutSeconds '30'", _function(timeoutSeconds="30"), False),
    ("timeoutSeconds true", _function(timeoutSeconds=True), False),
    ("concurrency 0", _function(concurrency=0), False),
    ("concurrency 1000", _function(concurrency=1000), True),
    ("concurrency 1001", _function(concurrency=1001), False),
    ("minReplicas -1", _function(scaling={"minReplicas": -1}), False),
    ("minReplicas 0", _function(scaling={"minReplicas": 0}), True),
    ("maxReplicas 0", _function(scaling={"maxReplicas": 0}), False),
    ("maxReplicas 1", _function(scaling={"maxReplicas": 1}), True),
    ("targetConcurrency 0", _function(scaling={"targetConcurrency": 0}), False),
    (
        "minReplicas over maxReplicas",
        _function(scaling={"minReplicas": 3, "maxReplicas": 2}),
        False,
    ),
    ("grace 1m30s", _function(scaling={"scaleToZeroGracePeriod": "1m30s"}), True),
    ("grace 250ms", _function(scaling={"scaleToZeroGracePeriod": "250ms"}), True),
    ("grace 30", _function(scaling={"scaleToZeroGracePeriod": "30"}), False),
    ("grace 1d", _function(scaling={"scaleToZeroGracePeriod": "1d"}), False),
    ("scaleDownDelay empty", _function(scaling={"scaleDownDelay": ""}), False),
    ("async retries -1", _function(**{"async": {"maxRetryAttempts": -1}}), False),
    ("async retries 8", _function(**{"async": {"maxRetryAttempts": 8}}), True),
    ("async retries 9", _function(**{"async": {"maxRetryAttempts": 9}}), False),
    ("maxEventAge 5 minutes", _function(**{"async": {"maxEventAge": "5 minutes"}}), False),
    ("to a Function", _destination(function="dead-letters"), True),
    ("to a Function named Bad_Name", _destination(function="Bad_Name"), False),
    ("to a Function of 64", _destination(function="a" * 64), False),
    ("to https", _destination(url="https://hooks.example.com/x"), True),
    ("to ftp", _destination(url="ftp://x"), False),
    ("to a URL of 2049", _destination(url="https://x/" + "a" * 2039), False),
    ("to a subject", _destination(subject="orders.done"), True),
    ("to a wildcard subject", _destination(subject="orders.>"), False),
    ("to a subject of 257", _destination(subject="a" * 257), False),
    ("to two places", _destination(subject="a", url="https://x"), False),
]

TRIGGER_CASES: list[tuple[str, dict[str, Any], bool]] = [
    ("a functionRef of 253", {"functionRef": {"name": "f" * 253}, "http": {}}, True),
    ("a functionRef of 254", {"functionRef": {"name": "f" * 254}, "http": {}}, False),
    ("a functionRef on version 2", {"functionRef": {"name": "f", "version": 2}, "http": {}}, True),
    ("a functionRef on version 0", {"functionRef": {"name": "f", "version": 0}, "http": {}}, False),
    (
        "a functionRef on alias live",
        {"functionRef": {"name": "f", "alias": "live"}, "http": {}},
        True,
    ),
    (
        "a functionRef on alias Live",
        {"functionRef": {"name": "f", "alias": "Live"}, "http": {}},
        False,
    ),
    (
        "a functionRef on a version and an alias",
        {"functionRef": {"name": "f", "version": 2, "alias": "live"}, "http": {}},
        False,
    ),
    ("path /v1", _http(path="/v1"), True),
    ("path without /", _http(path="v1"), False),
    ("path with ?", _http(path="/v1?x"), False),
    ("path with a space", _http(path="/v 1"), False),
    ("path of 1025", _http(path="/" + "a" * 1024), False),
    ("host", _http(host="api.example.com"), True),
    ("wildcard host", _http(host="*.example.com"), True),
    ("host:port", _http(host="api.example.com:8080"), True),
    ("host with a space", _http(host="api example.com"), False),
    ("host starting with -", _http(host="-api.example.com"), False),
    ("methods GET", _http(methods=["GET", "POST"]), True),
    ("methods FETCH", _http(methods=["FETCH"]), False),
    ("16 methods", _http(methods=["GET"] * 16), True),
    ("17 methods", _http(methods=["GET"] * 17), False),
    ("requestsPerSecond 0", _http(rateLimit={"requestsPerSecond": 0}), False),
    ("requestsPerSecond 0.5", _http(rateLimit={"requestsPerSecond": 0.5}), True),
    ("burst 1", _http(rateLimit={"requestsPerSecond": 5, "burst": 1}), True),
    ("burst 0", _http(rateLimit={"requestsPerSecond": 5, "burst": 0}), False),
    ("burst -1", _http(rateLimit={"requestsPerSecond": 5, "burst": -1}), False),
    ("cors maxAge 0", _http(cors={"maxAgeSeconds": 0}), True),
    ("cors maxAge -1", _http(cors={"maxAgeSeconds": -1}), False),
    (
        "cors credentials and *",
        _http(cors={"allowOrigins": ["*"], "allowCredentials": True}),
        False,
    ),
    ("time zone of 65", {"schedule": {"cron": "@daily", "timeZone": "A" * 65}}, False),
    ("bucket of 3", _bucket(bucket="abc"), True),
    ("bucket of 2", _bucket(bucket="ab"), False),
    ("bucket of 63", _bucket(bucket="a" * 63), True),
    ("bucket of 64", _bucket(bucket="a" * 64), False),
    ("bucket in capitals", _bucket(bucket="Photos"), False),
    ("an S3 event", _bucket(events=["s3:ObjectRemoved:*"]), True),
    ("not an S3 event", _bucket(events=["s3:Bogus"]), False),
    ("16 events", _bucket(events=["s3:ObjectCreated:*"] * 16), True),
    ("17 events", _bucket(events=["s3:ObjectCreated:*"] * 17), False),
    ("eventFormat oss", _bucket(eventFormat="oss"), True),
    ("eventFormat gcs", _bucket(eventFormat="gcs"), False),
    ("a JetStream stream of 255", _nats(stream="s" * 255), True),
    ("a JetStream stream of 256", _nats(stream="s" * 256), False),
    ("a JetStream stream with a space", _nats(stream="bad name"), False),
    ("a subject filter", _nats(subject="orders.*.eu"), True),
    ("a subject filter with ..", _nats(subject="orders..eu"), False),
    ("a subject filter of 257", _nats(subject="a" * 257), False),
    (
        "redis startFrom earliest",
        {
            "stream": {
                "redis": {"stream": "s", "urlSecretRef": {"name": "r"}, "startFrom": "earliest"}
            }
        },
        True,
    ),
    (
        "redis startFrom middle",
        {
            "stream": {
                "redis": {"stream": "s", "urlSecretRef": {"name": "r"}, "startFrom": "middle"}
            }
        },
        False,
    ),
    (
        "redis stream of 513",
        {"stream": {"redis": {"stream": "s" * 513, "urlSecretRef": {"name": "r"}}}},
        False,
    ),
    ("batchSize 0", _stream(batchSize=0), False),
    ("batchSize 1", _stream(batchSize=1), True),
    ("batchSize 1000", _stream(batchSize=1000), True),
    ("batchSize 1001", _stream(batchSize=1001), False),
    ("stream retries 100", _stream(maxRetryAttempts=100), True),
    ("stream retries 101", _stream(maxRetryAttempts=101), False),
    ("stream retries -1", _stream(maxRetryAttempts=-1), False),
    ("batchWindow 5 seconds", _stream(batchWindow="5 seconds"), False),
    ("kubernetes v1 ConfigMap", _kube(), True),
    ("kubernetes apps/v1 Deployment", _kube(apiVersion="apps/v1", kind="Deployment"), True),
    ("kubernetes a beta version", _kube(apiVersion="batch.example.io/v2beta1"), True),
    ("kubernetes apiVersion apps", _kube(apiVersion="apps"), False),
    ("kubernetes a lowercase kind", _kube(kind="configmap"), False),
    ("kubernetes without a kind", {"kubernetes": {"apiVersion": "v1"}}, False),
    ("kubernetes eventTypes DELETED", _kube(eventTypes=["DELETED"]), True),
    ("kubernetes eventTypes BOOKMARK", _kube(eventTypes=["BOOKMARK"]), False),
    ("kubernetes matchLabels", _kube(labelSelector={"matchLabels": {"app": "web"}}), True),
    (
        "kubernetes 17 matchLabels",
        _kube(labelSelector={"matchLabels": {f"k{i}": "v" for i in range(17)}}),
        False,
    ),
    ("kubernetes its own namespace", _kube(namespace="default"), True),
    ("kubernetes and http", {**_kube(), "http": {}}, False),
    ("stream onFailure to ftp", _stream(onFailure={"url": "ftp://x"}), False),
]

# Ranges a schema pattern cannot express: the apiserver admits these, the parser refuses.
ONLY_THE_PARSER_REFUSES_SPECS: list[tuple[str, str, dict[str, Any]]] = [
    ("maxEventAge 7h", "Function", _function(**{"async": {"maxEventAge": "7h"}})),
    ("canary steps falling", "Function", _alias(additionalVersion=2, canary={"steps": [50, 10]})),
    ("maxEventAge 30s", "Function", _function(**{"async": {"maxEventAge": "30s"}})),
    ("batchWindow 10m", "Trigger", _stream(batchWindow="10m")),
    ("kubernetes another namespace", "Trigger", _kube(namespace="kube-system")),
    ("maxRecordAge 200h", "Trigger", _stream(maxRecordAge="200h")),
    (
        "a time zone that does not exist",
        "Trigger",
        {"schedule": {"cron": "@daily", "timeZone": "Mars/Base"}},
    ),
    ("a handler module missing from inline", "Function", _function(handler="main.handler")),
    (
        "a memory limit that is no quantity",
        "Function",
        _function(resources={"limits": {"memory": "lots"}}),
    ),
]


def _admitted(kind: str, spec: dict[str, Any]) -> bool:
    if kind == "Trigger":
        spec = {"functionRef": {"name": "f"}, **spec}
    obj = {"apiVersion": "hanshu.io/v1alpha1", "kind": kind, "metadata": {"name": "f"}}
    _, errors = admit({**obj, "spec": spec}, CRDS)
    return errors == []


def _parsed(kind: str, spec: dict[str, Any]) -> bool:
    try:
        if kind == "Function":
            models.parse_function_spec(spec)
        else:
            models.parse_trigger_spec({"functionRef": {"name": "f"}, **spec}, "default")
    except models.SpecInvalid:
        return False
    return True


@pytest.mark.parametrize(
    ("kind", "spec", "valid"),
    [("Function", spec, valid) for _, spec, valid in FUNCTION_CASES]
    + [("Trigger", spec, valid) for _, spec, valid in TRIGGER_CASES],
    ids=[name for name, _, _ in FUNCTION_CASES + TRIGGER_CASES],
)
def test_the_crd_and_the_parser_agree(kind: str, spec: dict[str, Any], valid: bool):
    assert (_admitted(kind, spec), _parsed(kind, spec)) == (valid, valid), "(CRD, parser)"


@pytest.mark.parametrize(
    ("kind", "spec"),
    [(kind, spec) for _, kind, spec in ONLY_THE_PARSER_REFUSES_SPECS],
    ids=[name for name, _, _ in ONLY_THE_PARSER_REFUSES_SPECS],
)
def test_what_only_the_parser_can_judge(kind: str, spec: dict[str, Any]):
    assert _admitted(kind, spec)
    assert not _parsed(kind, spec)


# --- defaults: what the apiserver fills in is what the parser assumes -----------------------

MINIMAL_SPECS: list[tuple[str, dict[str, Any]]] = [
    ("Function", FUNCTION),
    ("Function", _function(**{"async": {"destinations": {"onFailure": {"subject": "x"}}}})),
    ("Trigger", _http()),
    (
        "Trigger",
        _http(auth={"apiKeySecretRef": {"name": "keys"}}, rateLimit={"requestsPerSecond": 2}),
    ),
    ("Trigger", {"schedule": {"cron": "@daily"}}),
    ("Trigger", _bucket(auth={"tokenSecretRef": {"name": "token"}})),
    ("Trigger", _nats(urlSecretRef={"name": "nats"})),
    ("Trigger", _kube()),
    ("Trigger", {"stream": {"redis": {"stream": "s", "urlSecretRef": {"name": "r"}}}}),
]


@pytest.mark.parametrize(("kind", "spec"), MINIMAL_SPECS)
def test_the_crds_defaults_are_the_parsers(kind: str, spec: dict[str, Any]):
    if kind == "Trigger":
        spec = {"functionRef": {"name": "f"}, **spec}
    obj = {"apiVersion": "hanshu.io/v1alpha1", "kind": kind, "metadata": {"name": "f"}}
    defaulted, errors = admit({**obj, "spec": spec}, CRDS)
    assert errors == []
    assert defaulted["spec"] != spec  # the CRD filled something in
    parse = models.parse_function_spec if kind == "Function" else models.parse_trigger_spec
    assert parse(defaulted["spec"]) == parse(spec)
