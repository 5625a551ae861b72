"""hanshu invoke's target (the Function's route, extended by --path and --query), dev
mode's state file, and the manifest loader that skips YAML that is not Hanshu's."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hanshu_cli import dev_state, folder, invoke_target, templates
from hanshu_cli.errors import CliError
from hanshu_cli.invoke_target import KnownRoute, Target
from hanshu_cli.manifests import ManifestError, load_documents, load_manifests

from tests.support.cli_cluster import run_cli_sync

GATEWAY = "http://127.0.0.1:8080"


@pytest.mark.parametrize(
    ("extension", "query", "url"),
    [
        ("", [], f"{GATEWAY}/from-lambda"),
        ("/hello", [], f"{GATEWAY}/from-lambda/hello"),
        ("hello", [], f"{GATEWAY}/from-lambda/hello"),
        ("?name=Ada", [], f"{GATEWAY}/from-lambda?name=Ada"),
        ("/hello?name=Ada", ["x=1 2"], f"{GATEWAY}/from-lambda/hello?name=Ada&x=1+2"),
        ("", ["name=Ada", "lang=en"], f"{GATEWAY}/from-lambda?name=Ada&lang=en"),
    ],
)
def test_path_and_query_extend_the_route_never_replace_it(
    extension: str, query: list[str], url: str
) -> None:
    route = KnownRoute("from-lambda", "/from-lambda")
    assert invoke_target.route_target(GATEWAY, route, "from-lambda", extension, query).url == url


def test_a_route_at_the_root_and_a_status_url_extend_alike() -> None:
    root = KnownRoute("hello", "/")
    assert invoke_target.route_target(GATEWAY, root, "hello", "/hello", []).url == (
        f"{GATEWAY}/hello"
    )
    status_url = "https://api.example.com/greeter"
    assert invoke_target.extend_url(status_url, "?name=Kube", []) == f"{status_url}?name=Kube"


def test_a_route_on_a_host_is_called_with_that_host() -> None:
    exact = KnownRoute("t", "/", "api.example.com")
    assert invoke_target.route_target(GATEWAY, exact, "f", "", []).headers == {
        "Host": "api.example.com"
    }
    wildcard = KnownRoute("t", "/", "*.example.com")
    assert invoke_target.route_target(GATEWAY, wildcard, "shop", "", []).headers == {
        "Host": "shop.example.com"
    }


def test_the_default_method_is_one_the_route_takes() -> None:
    post_only = Target(f"{GATEWAY}/x", methods=("POST",))
    assert invoke_target.pick_method(None, False, post_only) == "POST"
    assert invoke_target.pick_method(None, False, Target(f"{GATEWAY}/x")) == "GET"
    assert invoke_target.pick_method("put", False, post_only) == "PUT"


def test_a_function_without_an_http_trigger_goes_through_the_internal_path() -> None:
    target = invoke_target.internal_target(
        "http://127.0.0.1:9000", "default", "worker", "secret", "", [], False
    )
    assert target.url == "http://127.0.0.1:9000/_hanshu/invoke/default/worker"
    assert target.headers == {"X-Hanshu-Internal-Token": "secret"}
    assert invoke_target.pick_method(None, False, target) == "POST"
    stored = invoke_target.internal_target("http://h:1", "ns", "worker", "", "", [], True)
    assert stored.url == "http://h:1/_hanshu/enqueue/ns/worker"
    with pytest.raises(CliError, match="has no HTTP Trigger, so there is no route"):
        invoke_target.internal_target("http://h:1", "ns", "worker", "", "/x", [], False)


def test_a_query_that_is_not_name_value_is_refused() -> None:
    with pytest.raises(CliError, match="must be 'name=value'"):
        invoke_target.query_string(["novalue"])


def _state(pid: int) -> dev_state.DevState:
    route = dev_state.DevRoute("default", "greeter", "greeter", "/greeter", "", ("GET",))
    return dev_state.DevState(
        pid, GATEWAY, "http://127.0.0.1:9000", "", (("default", "greeter"),), (route,)
    )


def test_the_state_file_says_what_dev_mode_serves(tmp_path: Path) -> None:
    path = dev_state.write_state(_state(os.getpid()), tmp_path / "dev.json")
    assert path.stat().st_mode & 0o777 == 0o600  # it may hold the internal token
    found, ignored = dev_state.read_state(path)
    assert ignored is None
    assert found == _state(os.getpid())
    assert found.routes_of("default", "greeter")[0].path == "/greeter"
    assert dev_state.state_path({"XDG_STATE_HOME": "/s"}) == Path("/s/hanshu/dev.json")
    assert dev_state.state_path({"HANSHU_DEV_STATE": "/x.json"}) == Path("/x.json")


def test_only_the_dev_mode_that_wrote_the_state_file_removes_it(tmp_path: Path) -> None:
    path = dev_state.write_state(_state(os.getpid() + 100000), tmp_path / "dev.json")
    dev_state.withdraw(path)
    assert path.exists(), "another dev mode's file was removed"
    dev_state.write_state(_state(os.getpid()), path)
    dev_state.withdraw(path)
    assert not path.exists()


def _gone_pid() -> int:
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    )
    return int(done.stdout)


def test_a_stale_state_file_is_ignored_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = Path(os.environ["HANSHU_DEV_STATE"])
    pid = _gone_pid()
    dev_state.write_state(_state(pid), path)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))
    result = run_cli_sync("invoke", "greeter")
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert [line for line in lines if "ignoring" in line] == [lines[0]]
    assert f"(pid {pid}) is gone" in lines[0]
    assert "kubeconfig" in lines[-1]  # then the cluster is asked, as without dev mode


SAM = """\
AWSTemplateFormatVersion: '2010-09-09'
Resources:
  Fn:
    Properties:
      Role: !GetAtt Role.Arn
      Items: !Split [",", "a,b"]
      Env: !Sub {x: y}
---
apiVersion: hanshu.io/v1alpha1
kind: Function
metadata: {name: tagged}
spec: {handler: index.handler, code: {inline: {index.py: "def handler(e, c): pass"}}}
"""


def test_unknown_yaml_tags_are_read_as_plain_values() -> None:
    sam = load_documents(SAM)[0]
    props = sam["Resources"]["Fn"]["Properties"]
    assert props == {"Role": "Role.Arn", "Items": [",", "a,b"], "Env": {"x": "y"}}


def test_only_hanshus_kinds_are_loaded_the_rest_skipped_naming_the_file(
    tmp_path: Path,
) -> None:
    (tmp_path / "template.yaml").write_text(SAM)
    (tmp_path / "other.yml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n")
    lines: list[str] = []
    found = load_manifests([tmp_path], report=lines.append)
    assert list(found.functions) == [("default", "tagged")]
    assert len(lines) == 2
    assert f"skipped {tmp_path / 'other.yml'}: ConfigMap (v1)" in lines[0]
    assert f"skipped {tmp_path / 'template.yaml'}: an AWS SAM" in lines[1]


def test_a_hanshu_manifest_without_a_name_names_its_file(tmp_path: Path) -> None:
    bad = tmp_path / "function.yaml"
    bad.write_text("apiVersion: hanshu.io/v1alpha1\nkind: Function\nspec: {}\n")
    with pytest.raises(ManifestError, match=f"{bad}: the Function has no metadata.name"):
        load_manifests([bad])


def test_deploy_reads_a_folder_with_a_sam_template_beside_the_code(tmp_path: Path) -> None:
    files = templates.render("greeter", "event")
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "template.yaml").write_text(SAM.split("---")[0])
    read = folder.read_folder(tmp_path)
    assert read.skipped == ["template.yaml (an AWS SAM / CloudFormation template)"]
    assert folder.plan_deploy(read, "default").name == "greeter"


def test_the_init_readme_calls_the_function_as_dev_mode_serves_it() -> None:
    readme = templates.render("greeter", "event")["README.md"]
    assert "hanshu invoke greeter --path '?name=Ada'" in readme
    assert ".venv/bin" in readme or "PATH" in readme
