"""The hanshu command's pure parts: a folder becomes manifests, log lines merge, metrics
become a bill."""

from __future__ import annotations

import datetime
import textwrap
from pathlib import Path

import pytest
from hanshu_api.models import parse_function_spec
from hanshu_cli import calls, folder, logs, templates, usage
from hanshu_cli.errors import CliError

HANDLER = "def handler(event, context):\n    return 'hi'\n"
MANIFEST = textwrap.dedent("""
    apiVersion: hanshu.io/v1alpha1
    kind: Function
    metadata: {name: hello}
    spec: {handler: index.handler}
    ---
    apiVersion: hanshu.io/v1alpha1
    kind: Trigger
    metadata: {name: hello}
    spec:
      functionRef: {name: hello}
      http: {path: /hello}
""")


def write(path: Path, files: dict[str, str]) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(content)
    return path


def plan(path: Path, image: str | None = None) -> folder.Plan:
    return folder.plan_deploy(folder.read_folder(path), "team-a", image)


def test_a_small_folder_becomes_an_inline_function_and_its_trigger(tmp_path: Path) -> None:
    write(tmp_path, {"function.yaml": MANIFEST, "index.py": HANDLER, "util.py": "X = 1\n"})
    made = plan(tmp_path)
    assert [(o["kind"], o["metadata"]["name"]) for o in made.objects()] == [
        ("Function", "hello"),
        ("Trigger", "hello"),
    ]
    assert made.function["metadata"]["namespace"] == "team-a"
    assert made.function["spec"]["code"] == {"inline": {"index.py": HANDLER, "util.py": "X = 1\n"}}
    assert made.triggers[0]["metadata"]["namespace"] == "team-a"
    # What the operator will accept.
    assert parse_function_spec(made.function["spec"]).handler == "index.handler"


def test_larger_code_goes_to_a_configmap_of_its_own(tmp_path: Path) -> None:
    big = "# " + "x" * (folder.INLINE_LIMIT_BYTES + 10) + "\n"
    write(tmp_path, {"function.yaml": MANIFEST, "index.py": HANDLER, "data.py": big})
    made = plan(tmp_path)
    assert made.code_source == "configMap"
    assert made.function["spec"]["code"] == {"configMap": {"name": "hello-code"}}
    assert made.config_map is not None
    assert made.config_map["data"]["data.py"] == big
    assert made.objects()[0] is made.config_map  # the code exists before the Function


def test_image_flag_wins_and_skips_the_folder_checks(tmp_path: Path) -> None:
    write(tmp_path, {"function.yaml": MANIFEST, "requirements.txt": "flask\n"})
    made = plan(tmp_path, image="registry.example/hello:1")
    assert made.function["spec"]["code"] == {"image": "registry.example/hello:1"}


def test_requirements_without_an_image_print_the_exact_build_command(tmp_path: Path) -> None:
    write(
        tmp_path,
        {"function.yaml": MANIFEST, "index.py": HANDLER, "requirements.txt": "requests\n"},
    )
    with pytest.raises(CliError) as refused:
        plan(tmp_path)
    message = str(refused.value)
    assert "requirements.txt lists packages (requests)" in message
    assert f"docker build -t REGISTRY/hello:v1 {tmp_path}" in message
    assert f"hanshu deploy {tmp_path} --image REGISTRY/hello:v1" in message


@pytest.mark.parametrize(
    ("files", "says"),
    [
        ({"index.py": HANDLER}, "has no Function manifest"),
        ({"function.yaml": MANIFEST}, "needs index.py"),
        ({"function.yaml": MANIFEST, "index.py": "def other(e, c):\n    pass\n"}, "no 'handler'"),
        ({"function.yaml": MANIFEST, "index.py": "def handler(:\n"}, "line 1"),
        ({"function.yaml": MANIFEST, "index.py": HANDLER, "pkg/m.py": ""}, "subfolders"),
    ],
)
def test_a_folder_that_cannot_run_says_what_is_missing(
    tmp_path: Path, files: dict[str, str], says: str
) -> None:
    write(tmp_path, files)
    with pytest.raises(CliError, match=says) as refused:
        plan(tmp_path)
    assert "\n" not in str(refused.value)


def test_handlers_are_found_however_the_module_binds_them() -> None:
    assert folder.defines("async def handler(e, c): ...", "handler")
    assert folder.defines("app = Flask(__name__)", "app")
    assert folder.defines("from lib import handler", "handler")
    assert not folder.defines("def handler2(e, c): ...", "handler")


@pytest.mark.parametrize("template", templates.TEMPLATES)
def test_init_templates_make_folders_deploy_accepts(tmp_path: Path, template: str) -> None:
    write(tmp_path, templates.render("my-fn", template))
    image = None if template == "event" else "registry.example/my-fn:1"
    made = plan(tmp_path, image)
    assert made.name == "my-fn"
    assert [t["spec"]["http"]["path"] for t in made.triggers] == ["/my-fn"]
    parse_function_spec(made.function["spec"])


def test_init_refuses_names_kubernetes_would() -> None:
    with pytest.raises(CliError, match="not a valid Function name"):
        templates.render("Hello_World", "event")


def test_log_lines_of_pods_merge_in_time_order_and_filter_by_request() -> None:
    a = logs.parse_log(
        "hello-a",
        '2026-01-01T10:00:00.300000000Z {"level": "INFO", "message": "two", "requestId": "r1"}\n'
        '2026-01-01T10:00:00.100000000Z {"level": "INFO", "message": "one", "requestId": "r1"}\n',
    )
    b = logs.parse_log(
        "hello-b",
        '2026-01-01T10:00:00.200000000Z {"level": "ERROR", "message": "other", "requestId": "r2"}\n'
        "2026-01-01T10:00:00.250000000Z plain text\n",
    )
    merged = logs.merge([*a, *b])
    assert [line.pod for line in merged] == ["hello-a", "hello-b", "hello-b", "hello-a"]
    only = logs.merge([*a, *b], "r1")
    assert [line.fields["message"] for line in only] == ["one", "two"]
    assert logs.render(only[0]) == "10:00:00.100 hello-a INFO    one [r1]"
    assert merged[0].time == datetime.datetime(2026, 1, 1, 10, 0, 0, 100000, tzinfo=datetime.UTC)


def test_durations_as_kubectl_takes_them() -> None:
    assert logs.parse_duration("10m") == 600
    with pytest.raises(ValueError, match="not a duration"):
        logs.parse_duration("ten minutes")


def test_usage_sums_gateway_replicas_counters() -> None:
    text = textwrap.dedent("""
        # TYPE hanshu_gateway_invocations counter
        hanshu_gateway_invocations_total{namespace="a",function="f",type="Sync",code="200"} 7.0
        hanshu_gateway_invocations_total{namespace="a",function="f",type="Async",code="502"} 2.0
        # TYPE hanshu_gateway_cold_starts counter
        hanshu_gateway_cold_starts_total{namespace="a",function="f"} 1.0
        # TYPE hanshu_gateway_gb_seconds counter
        hanshu_gateway_gb_seconds_total{namespace="a",function="f",type="Sync"} 0.25
    """)
    found = usage.from_metrics([text, text])
    # Without a version label (a gateway from before versions): LATEST.
    assert found == {("a", "f", "LATEST"): usage.Usage(18.0, 4.0, 2.0, 0.5)}


def test_usage_splits_by_version() -> None:
    series = 'hanshu_gateway_invocations_total{namespace="a",function="f",type="Sync"'
    text = textwrap.dedent(f"""
        # TYPE hanshu_gateway_invocations counter
        {series},code="200",version="1"}} 9.0
        {series},code="500",version="2"}} 3.0
        {series},code="200",version="LATEST"}} 1.0
        # TYPE hanshu_gateway_gb_seconds counter
        hanshu_gateway_gb_seconds_total{{namespace="a",function="f",version="2"}} 0.5
    """)
    found = usage.from_metrics([text])
    assert found == {
        ("a", "f", "1"): usage.Usage(9.0),
        ("a", "f", "2"): usage.Usage(3.0, 3.0, 0.0, 0.5),
        ("a", "f", "LATEST"): usage.Usage(1.0),
    }
    assert all(
        "(namespace, function, version)" in q for q in usage.prometheus_queries("1h").values()
    )
    answers = {
        "invocations": {
            "data": {
                "result": [
                    {
                        "metric": {"namespace": "a", "function": "f", "version": "2"},
                        "value": [0, "4"],
                    }
                ]
            }
        }
    }
    assert usage.from_prometheus(answers) == {("a", "f", "2"): usage.Usage(4.0)}


def test_a_failed_invocation_is_told_by_its_error_body() -> None:
    failed = {"state": "Failed", "error": {"errorType": "KeyError", "errorMessage": "'x'"}}
    assert calls.failure_of("abc", failed) == "invocation abc Failed: KeyError: 'x'"
    retrying = {"state": "Retrying", "lastError": {"errorType": "HTTP500", "errorMessage": ""}}
    assert calls.failure_of("abc", retrying) == "invocation abc Retrying: HTTP500"
    # An error that is not an error body (a newer gateway's, a hand-edited record): the state.
    assert calls.failure_of("abc", {"state": "Expired", "error": "gone"}) == (
        "invocation abc Expired"
    )
