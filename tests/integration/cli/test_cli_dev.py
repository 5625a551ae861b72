"""hanshu dev with real runtime processes: init a folder, run it, invoke it (sync and
async), read its bill; and init -> deploy -> invoke as one flow, the deploy against the
emulated API and the call through the dev gateway the Trigger's status points at."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import ROOT
from tests.support.cli_cluster import Cluster, ready, run_cli
from tests.support.servers import free_port


class DevProcess:
    def __init__(self, process: subprocess.Popen[str], port: int, internal_port: int) -> None:
        self.process = process
        self.url = f"http://127.0.0.1:{port}"
        self.internal_url = f"http://127.0.0.1:{internal_port}"


def start_dev(paths: list[Path], log_path: Path) -> DevProcess:
    """``hanshu dev PATHS`` as its own process, its output in ``log_path``; returned once
    its gateway is ready."""
    port, internal = free_port(), free_port()
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "hanshu_cli",
                "dev",
                *map(str, paths),
                "--port",
                str(port),
                "--internal-port",
                str(internal),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
    dev = DevProcess(process, port, internal)
    deadline = time.monotonic() + 30
    while True:
        if process.poll() is not None:
            pytest.fail(f"hanshu dev exited: {log_path.read_text()}")
        try:
            with urllib.request.urlopen(f"{dev.internal_url}/readyz", timeout=2) as reply:
                if reply.status == 200:
                    return dev
        except OSError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"hanshu dev did not start: {log_path.read_text()}")
        time.sleep(0.05)


def stop_dev(dev: DevProcess) -> None:
    dev.process.terminate()
    try:
        dev.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        dev.process.kill()
        dev.process.wait()


def init_folder(parent: Path, name: str) -> Path:
    folder = parent / name
    init = subprocess.run(
        [sys.executable, "-m", "hanshu_cli", "init", name, "--dir", str(folder)],
        capture_output=True,
        text=True,
    )
    assert init.returncode == 0, init.stderr
    return folder


@pytest.fixture
def dev_folder(tmp_path: Path) -> Iterator[tuple[Path, DevProcess]]:
    folder = init_folder(tmp_path, "greeter")
    dev = start_dev([folder], tmp_path / "dev.log")
    yield folder, dev
    stop_dev(dev)


async def test_invoke_prints_status_request_id_cold_start_duration_then_body(
    dev_folder: tuple[Path, DevProcess],
) -> None:
    _, dev = dev_folder
    cold = await run_cli("invoke", "greeter", "--gateway", dev.url, "--path", "?name=Ada")
    assert cold.exit_code == 0, cold.stderr
    summary = cold.stderr.splitlines()[-1]
    assert summary.startswith("200 OK")
    assert "cold start" in summary
    assert summary.endswith(" ms")
    body = json.loads(cold.stdout)
    assert body["message"] == "Hello, Ada!"
    assert f"request id {body['requestId']}" in summary
    warm = await run_cli("invoke", "greeter", "--gateway", dev.url)
    assert "warm" in warm.stderr.splitlines()[-1]


async def test_async_invoke_waits_for_the_end_state(dev_folder: tuple[Path, DevProcess]) -> None:
    _, dev = dev_folder
    result = await run_cli(
        "invoke", "greeter", "--gateway", dev.url, "--async", "--wait", "--data", "{}"
    )
    assert result.exit_code == 0, result.stderr
    assert "accepted: invocation" in result.stderr
    assert "Succeeded" in result.stderr
    assert json.loads(result.stdout)["message"] == "Hello, world!"


async def test_usage_reads_the_dev_gateways_metrics(dev_folder: tuple[Path, DevProcess]) -> None:
    _, dev = dev_folder
    for _ in range(3):
        assert (await run_cli("invoke", "greeter", "--gateway", dev.url)).exit_code == 0
    result = await run_cli("usage", "--metrics-url", f"{dev.internal_url}/metrics")
    assert result.exit_code == 0, result.stderr
    row = next(line for line in result.stdout.splitlines() if "default/greeter" in line)
    invocations, errors, cold_starts, gb_seconds = row.split()[1:]
    assert (invocations, errors, cold_starts) == ("3", "0", "1")
    assert float(gb_seconds) > 0


async def test_init_then_deploy_then_invoke(
    cluster: Cluster, dev_folder: tuple[Path, DevProcess]
) -> None:
    """The operator's part (status) is written by the test; the gateway is the dev one."""
    folder, dev = dev_folder
    deploying = asyncio.create_task(cluster.hanshu("deploy", str(folder), "--timeout", "30"))

    async def operator() -> None:
        while "greeter" not in cluster.names("hanshu.io/v1alpha1/triggers"):
            await asyncio.sleep(0.02)
        url = f"{dev.url}/greeter"
        await cluster.set_status("functions", "greeter", ready(url=url))
        await cluster.set_status("triggers", "greeter", {**ready(), "type": "http", "url": url})

    await asyncio.wait_for(operator(), 30)
    deployed = await deploying
    assert deployed.exit_code == 0, deployed.stderr
    called = await cluster.hanshu("invoke", "greeter", "--path", "?name=Kube")
    assert called.exit_code == 0, called.stderr
    assert json.loads(called.stdout)["message"] == "Hello, Kube!"
    # --gateway: the route from the cluster's Trigger objects, through that gateway.
    through = await cluster.hanshu(
        "invoke", "greeter", "--gateway", dev.url, "--path", "?name=Gw", "-q", "x=1"
    )
    assert through.exit_code == 0, through.stderr
    assert json.loads(through.stdout)["message"] == "Hello, Gw!"


WORKER = """\
apiVersion: hanshu.io/v1alpha1
kind: Function
metadata:
  name: worker
spec:
  handler: work.handler
  code:
    inline:
      work.py: |
        def handler(event, context):
            return {"got": event}
"""


def _state_file() -> Path:
    return Path(os.environ["HANSHU_DEV_STATE"])


async def test_invoke_finds_dev_mode_and_extends_the_functions_route(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No --gateway, no kubeconfig: the state file dev mode wrote says where it is. The
    name picks the Function's route; --path and --query go below it."""
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))
    greeter = init_folder(tmp_path, "greeter")
    worker = tmp_path / "worker"
    worker.mkdir()
    (worker / "function.yaml").write_text(WORKER)
    dev = start_dev([greeter, ROOT / "examples" / "from-lambda", worker], tmp_path / "dev.log")
    try:
        assert json.loads(_state_file().read_text())["publicUrl"] == dev.url

        found = await run_cli("invoke", "greeter", "--path", "?name=Ada")
        assert found.exit_code == 0, found.stderr
        assert json.loads(found.stdout)["message"] == "Hello, Ada!"

        below = await run_cli(
            "invoke", "from-lambda", "--gateway", dev.url, "--path", "/hello", "-q", "name=Bo"
        )
        assert below.exit_code == 0, below.stderr
        reply = json.loads(below.stdout)
        assert (reply["path"], reply["message"]) == ("/hello", "Hello, Bo!")

        query_only = await run_cli("invoke", "from-lambda", "--path", "?name=Cy")
        assert query_only.exit_code == 0, query_only.stderr
        assert json.loads(query_only.stdout)["message"] == "Hello, Cy!"

        # No HTTP Trigger: the event goes through the gateway's internal path.
        raw = await run_cli("invoke", "worker", "--data", '{"n": 1}')
        assert raw.exit_code == 0, raw.stderr
        assert json.loads(raw.stdout) == {"got": {"n": 1}}
        no_route = await run_cli("invoke", "worker", "--path", "/x")
        assert no_route.exit_code == 1
        assert "has no HTTP Trigger" in no_route.stderr
    finally:
        stop_dev(dev)
    assert not _state_file().exists(), "dev mode left its state file behind"
    after = await run_cli("invoke", "greeter")
    assert after.exit_code == 1
    assert "ignoring" not in after.stderr  # removed, not stale


SAM_TEMPLATE = """\
AWSTemplateFormatVersion: '2010-09-09'
Transform: AWS::Serverless-2016-10-31
Resources:
  Greeter:
    Type: AWS::Serverless::Function
    Properties:
      Handler: index.handler
      Role: !GetAtt GreeterRole.Arn
      Environment:
        Variables:
          TABLE: !Ref Table
          URL: !Sub "https://${AWS::Region}.example.com"
"""

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: sidecar
spec:
  replicas: 1
"""

HELM_TEMPLATE = """\
apiVersion: v1
kind: Service
metadata:
  name: {{ .Release.Name }}
spec:
  ports: {{ toYaml .Values.ports | nindent 4 }}
"""


async def test_dev_mode_skips_yaml_that_is_not_hanshus(tmp_path: Path) -> None:
    """A SAM template (!Ref, !GetAtt, !Sub), another kind's manifest and a Helm template
    beside the Function: each skipped in one line naming its file; the Function is served."""
    greeter = init_folder(tmp_path, "greeter")
    (greeter / "template.yaml").write_text(SAM_TEMPLATE)
    (greeter / "deploy.yml").write_text(DEPLOYMENT)
    (greeter / "chart" / "templates").mkdir(parents=True)
    (greeter / "chart" / "templates" / "service.yaml").write_text(HELM_TEMPLATE)
    log = tmp_path / "dev.log"
    dev = start_dev([greeter], log)
    try:
        called = await run_cli("invoke", "greeter", "--gateway", dev.url)
        assert called.exit_code == 0, called.stderr
    finally:
        stop_dev(dev)
    skipped = [line for line in log.read_text().splitlines() if " skipped " in line]
    assert len(skipped) == 3, log.read_text()
    by_file = {
        name: line
        for line in skipped
        for name in ("template.yaml", "deploy.yml", "service.yaml")
        if name in line
    }
    assert "SAM" in by_file["template.yaml"]
    assert "Deployment (apps/v1)" in by_file["deploy.yml"]
    assert "template ({{ }})" in by_file["service.yaml"]


async def test_image_examples_run_from_their_folders_as_their_readmes_say(
    tmp_path: Path,
) -> None:
    """examples/flask-app and fastapi-app are image Functions: dev mode runs them from their
    folders, and the hanshu invoke lines of their READMEs work as written."""
    examples = ROOT / "examples"
    for example in ("flask-app", "fastapi-app"):
        readme = (examples / example / "README.md").read_text()
        assert f"hanshu dev examples/{example}" in readme, f"{example}'s README shows no dev mode"
    developer_mode = (ROOT / "docs" / "concepts.md").read_text().partition("## Developer mode")[2]
    assert "hanshu dev examples/flask-app examples/fastapi-app" in developer_mode
    dev = start_dev([examples / "flask-app", examples / "fastapi-app"], tmp_path / "dev.log")
    try:
        added = await run_cli(
            "invoke", "todos-flask", "--path", "/todos", "--data", '{"title": "write docs"}'
        )
        assert added.exit_code == 0, added.stderr
        assert added.stderr.splitlines()[-1].startswith("201")
        listed = await run_cli("invoke", "todos-flask", "--path", "/todos")
        assert json.loads(listed.stdout) == [{"id": 1, "title": "write docs"}]
        ordered = await run_cli(
            "invoke",
            "orders-fastapi",
            "--path",
            "/orders",
            "--data",
            '{"item": "tea", "quantity": 2}',
        )
        assert ordered.exit_code == 0, ordered.stderr
        assert json.loads(ordered.stdout) == {"item": "tea", "quantity": 2}
    finally:
        stop_dev(dev)
