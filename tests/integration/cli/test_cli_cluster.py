"""deploy, get, describe, logs and usage against the emulated Kubernetes API, and the
errors a user meets: no cluster, Hanshu not installed, a folder without a handler."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import kmock
from hanshu_cli import templates

from devtools.kube_emulator import ApplyingEmulator, write_kubeconfig
from tests.support.cli_cluster import NAMESPACE, Cluster, ready, run_cli
from tests.support.helpers import eventually


def init_folder(tmp_path: Path, name: str = "hello") -> Path:
    folder = tmp_path / name
    folder.mkdir()
    for file_name, content in templates.render(name, "event").items():
        (folder / file_name).write_text(content)
    return folder


async def test_deploy_applies_exactly_the_function_and_trigger_and_waits_for_ready(
    cluster: Cluster, tmp_path: Path
) -> None:
    folder = init_folder(tmp_path)
    deploying = asyncio.create_task(cluster.hanshu("deploy", str(folder), "--timeout", "30"))
    await eventually(lambda: cluster.names("hanshu.io/v1alpha1/triggers") == ["hello"])
    assert not deploying.done(), "deploy returned before the Function was Ready"
    await cluster.set_status("functions", "hello", ready(url="http://gw.example/hello"))
    await cluster.set_status(
        "triggers", "hello", {**ready(), "type": "http", "url": "http://gw.example/hello"}
    )
    result = await deploying
    assert result.exit_code == 0, result.stderr
    assert "Function hello is Ready" in result.stdout
    assert "http://gw.example/hello" in result.stdout
    assert cluster.names("hanshu.io/v1alpha1/functions") == ["hello"]
    assert cluster.names("v1/configmaps") == []  # small code is inline
    function = cluster.object("hanshu.io/v1alpha1/functions", "hello")
    assert function["spec"]["handler"] == "index.handler"
    assert "def handler(event, context)" in function["spec"]["code"]["inline"]["index.py"]
    owners = cluster.emulator.owners("hanshu.io/v1alpha1/functions", NAMESPACE, "hello")
    assert ("hanshu-cli", "Apply") in owners  # server-side apply, as a field manager


async def test_deploy_prints_the_failing_reason_and_exits_non_zero(
    cluster: Cluster, tmp_path: Path
) -> None:
    folder = init_folder(tmp_path)
    deploying = asyncio.create_task(cluster.hanshu("deploy", str(folder), "--timeout", "30"))
    await eventually(lambda: cluster.names("hanshu.io/v1alpha1/functions") == ["hello"])
    fault = "ModuleNotFoundError: No module named 'numpy' (index.py, line 3)"
    await cluster.set_status(
        "functions",
        "hello",
        {
            "conditions": [
                {
                    "type": "Ready",
                    "status": "False",
                    "reason": "RuntimeStartupFailed",
                    "message": fault,
                }
            ]
        },
    )
    result = await deploying
    assert result.exit_code == 1
    assert f"Function hello is not Ready: RuntimeStartupFailed: {fault}" in result.stderr
    assert "Traceback" not in result.stderr


async def test_get_and_describe_read_status_triggers_and_events(
    cluster: Cluster, tmp_path: Path
) -> None:
    folder = init_folder(tmp_path)
    assert (await cluster.hanshu("deploy", str(folder), "--no-wait")).exit_code == 0
    await cluster.set_status(
        "functions",
        "hello",
        ready(
            url="http://gw.example/hello",
            readyReplicas=2,
            desiredReplicas=3,
            lastScale={"replicas": 3, "reason": "Load", "message": "12 in flight / 5 target"},
        ),
    )
    cluster.emulator.objects[kmock.resource("v1/events"), NAMESPACE, "hello.1"] = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": "hello.1", "namespace": NAMESPACE},
        "involvedObject": {"kind": "Function", "name": "hello", "namespace": NAMESPACE},
        "reason": "Scaled",
        "message": "2 -> 3 replicas (Load)",
        "type": "Normal",
        "lastTimestamp": "2026-01-01T10:00:00Z",
    }
    listed = await cluster.hanshu("get")
    assert listed.exit_code == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if line.startswith("hello"))
    for shown in ("True (Ready)", "2/3", "-> 3: Load (12 in flight / 5 target)", "gw.example"):
        assert shown in row
    described = await cluster.hanshu("describe", "hello")
    assert described.exit_code == 0, described.stderr
    for shown in ("Conditions", "Ready", "Triggers", "http"):
        assert shown in described.stdout
    assert "2 -> 3 replicas (Load)" in described.stdout


async def test_get_shows_whether_the_warm_pool_serves_a_function_and_the_pool(
    cluster: Cluster, tmp_path: Path
) -> None:
    folder = init_folder(tmp_path)
    assert (await cluster.hanshu("deploy", str(folder), "--no-wait")).exit_code == 0
    listed = await cluster.hanshu("get")
    assert f"no warm pool in namespace {NAMESPACE}" in listed.stdout
    status = ready()
    status["conditions"].append(
        {
            "type": "PoolEligible",
            "status": "False",
            "reason": "SecretInEnvironment",
            "message": "env 'DB' comes from a Secret; Secrets never pass through the gateway",
        }
    )
    await cluster.set_status("functions", "hello", status)
    cluster.emulator.objects[kmock.resource("apps/v1/deployments"), NAMESPACE, "hanshu-pool"] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "hanshu-pool", "namespace": NAMESPACE},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"a": "b"}}, "template": {}},
        "status": {"replicas": 2, "readyReplicas": 1},
    }

    listed = await cluster.hanshu("get")

    assert listed.exit_code == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if line.startswith("hello"))
    assert "no (SecretInEnvironment)" in row
    assert f"warm pool in namespace {NAMESPACE}: 1 of 2 pod(s) available" in listed.stdout
    described = await cluster.hanshu("describe", "hello")
    assert "Secrets never pass through the gateway" in described.stdout


async def test_logs_merge_every_replica_and_follow_one_request_across_pods(
    cluster: Cluster, tmp_path: Path
) -> None:
    folder = init_folder(tmp_path)
    assert (await cluster.hanshu("deploy", str(folder), "--no-wait")).exit_code == 0
    for pod, lines in {
        "hello-1": [
            ("10:00:00.100", {"level": "INFO", "message": "start", "requestId": "r-7"}),
            ("10:00:00.400", {"level": "INFO", "message": "other", "requestId": "r-8"}),
        ],
        "hello-2": [
            ("10:00:00.200", {"level": "ERROR", "message": "retry", "requestId": "r-7"}),
        ],
    }.items():
        cluster.emulator.objects[kmock.resource("v1/pods"), NAMESPACE, pod] = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": pod,
                "namespace": NAMESPACE,
                "labels": {"hanshu.io/function": "hello"},
            },
            "status": {"phase": "Running"},
        }
        text = "".join(f"2026-01-01T{t}000000Z {json.dumps(line)}\n" for t, line in lines)
        cluster.emulator[f"get /api/v1/namespaces/{NAMESPACE}/pods/{pod}/log"] << text.encode()
    merged = await cluster.hanshu("logs", "hello")
    assert merged.exit_code == 0, merged.stderr
    assert [line.split()[1] for line in merged.stdout.splitlines()] == [
        "hello-1",
        "hello-2",
        "hello-1",
    ]
    one = await cluster.hanshu("logs", "hello", "--request-id", "r-7")
    assert [line.split()[3] for line in one.stdout.splitlines()] == ["start", "retry"]
    missing = await cluster.hanshu("logs", "hello", "--request-id", "r-404")
    assert missing.exit_code == 1
    assert "no line of request r-404" in missing.stderr


async def test_usage_reads_the_gateway_pods_metrics_through_the_api_server(
    cluster: Cluster,
) -> None:
    cluster.emulator.objects[kmock.resource("v1/pods"), "hanshu-system", "gw-1"] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "gw-1",
            "namespace": "hanshu-system",
            "labels": {
                "app.kubernetes.io/name": "hanshu",
                "app.kubernetes.io/component": "gateway",
            },
        },
        "status": {"phase": "Running"},
    }
    metrics = (
        "# TYPE hanshu_gateway_invocations counter\n"
        'hanshu_gateway_invocations_total{namespace="team-a",function="hello",type="Sync",'
        'code="200"} 41.0\n'
        "# TYPE hanshu_gateway_gb_seconds counter\n"
        'hanshu_gateway_gb_seconds_total{namespace="team-a",function="hello",type="Sync"} 1.5\n'
    )
    cluster.emulator["get /api/v1/namespaces/hanshu-system/pods/gw-1:8081/proxy/metrics"] << (
        metrics.encode()
    )
    result = await cluster.hanshu("usage")
    assert result.exit_code == 0, result.stderr
    row = next(line for line in result.stdout.splitlines() if "team-a/hello" in line)
    assert row.split()[1:] == ["41", "0", "0", "1.500"]


async def test_no_cluster_is_one_line_naming_the_kubeconfig_and_context(tmp_path: Path) -> None:
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", "http://127.0.0.1:9", "x")
    result = await run_cli("--kubeconfig", str(kubeconfig), "get")
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert "cannot reach the cluster at http://127.0.0.1:9" in result.stderr
    assert f"kubeconfig {kubeconfig}, context kmock" in result.stderr
    assert "Traceback" not in result.stderr


async def test_a_cluster_without_hanshu_says_how_to_install_it(
    kmock: ApplyingEmulator, kubeconfig: Path, tmp_path: Path
) -> None:
    kmock.resources.load_bundled()  # Kubernetes, but no hanshu.io CRDs
    result = await run_cli("--kubeconfig", str(kubeconfig), "deploy", str(init_folder(tmp_path)))
    assert result.exit_code == 1
    assert "Hanshu is not installed in this cluster" in result.stderr
    assert "helm install" in result.stderr


async def test_a_folder_without_a_handler_says_what_is_missing(
    cluster: Cluster, tmp_path: Path
) -> None:
    folder = init_folder(tmp_path)
    (folder / "index.py").unlink()
    result = await cluster.hanshu("deploy", str(folder))
    assert result.exit_code == 1
    assert "spec.handler 'index.handler' needs index.py" in result.stderr
    assert "def handler(event, context)" in result.stderr
    assert cluster.names("hanshu.io/v1alpha1/functions") == []  # nothing half-applied


async def test_invoke_of_a_function_without_an_http_trigger_says_so(
    cluster: Cluster, tmp_path: Path
) -> None:
    """On a cluster the gateway's internal path is out of reach: invoke says to add an HTTP
    Trigger, with or without --gateway, instead of calling some other route."""
    folder = init_folder(tmp_path, "worker")
    manifest = folder / "function.yaml"
    manifest.write_text(manifest.read_text().partition("---")[0])  # the Function alone
    deployed = await cluster.hanshu("deploy", str(folder), "--no-wait")
    assert deployed.exit_code == 0, deployed.stderr
    for extra in ([], ["--gateway", "http://127.0.0.1:9"]):
        result = await cluster.hanshu("invoke", "worker", *extra)
        assert result.exit_code == 1
        assert "Function worker has no HTTP Trigger in namespace" in result.stderr
        assert "add a Trigger with spec.http.path" in result.stderr
