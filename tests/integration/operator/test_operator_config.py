"""The operator as its own process: a bad setting is one line naming the variable (checked
before anything connects), and the documented ``kopf run -m ...`` really runs the handlers."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import hanshu_operator
import hanshu_operator.__main__
import hanshu_operator.handlers
import pytest
from hanshu_api import API_VERSION, FUNCTION_PLURAL

from tests.support.helpers import eventually
from tests.support.operator_cluster import HANDLERS_MODULE, NAMESPACE, Cluster
from tests.support.operator_objects import DEPLOYMENTS, hello


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("HANSHU_RETRY_DELAY_SECONDS", "soon"),
        ("HANSHU_NATS_URL", "hanshu-nats:4222"),
        ("HANSHU_WATCHABLE_KINDS", "v1/ConfigMap"),
        ("HANSHU_DEFAULT_RESOURCES", '{"limits": {"memory": 256'),
        ("HANSHU_NETWORK_POLICY", "maybe"),
    ],
)
def test_a_bad_setting_stops_the_operator_with_one_line(tmp_path: Path, variable: str, value: str):
    env = {
        **os.environ,
        # Nowhere to connect: the settings must be refused before any connection.
        "KUBECONFIG": str(tmp_path / "missing-kubeconfig"),
        variable: value,
    }
    finished = subprocess.run(
        [sys.executable, "-m", "hanshu_operator"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert finished.returncode != 0
    lines = finished.stderr.strip().splitlines()
    assert len(lines) == 1, finished.stderr
    assert "Traceback" not in finished.stderr
    assert lines[0].startswith(f"hanshu-operator: {variable} ")
    assert f"set {variable} to " in lines[0]


def test_a_kubeconfig_that_cannot_log_in_stops_the_operator_with_one_line(tmp_path: Path):
    broken = tmp_path / "kubeconfig"
    broken.write_text("apiVersion: v1\nkind: Config\ncurrent-context: nowhere\n")
    finished = subprocess.run(
        [sys.executable, "-m", "hanshu_operator"],
        env={**os.environ, "KUBECONFIG": str(broken)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert finished.returncode != 0
    lines = finished.stderr.strip().splitlines()
    assert len(lines) == 1, finished.stderr
    assert lines[0].startswith("hanshu-operator: ")
    assert str(broken) in lines[0]  # names the file it could not log in with


def documented_kopf_modules() -> set[str]:
    docs = (hanshu_operator, hanshu_operator.__main__, hanshu_operator.handlers)
    return {
        found for module in docs for found in re.findall(r"kopf run -m\s+([\w.]+)", module.__doc__)
    }


@pytest.mark.slow
async def test_the_documented_kopf_command_runs_the_handlers(cluster: Cluster, tmp_path: Path):
    modules = documented_kopf_modules()
    assert len(modules) == 1, f"the docstrings name different kopf commands: {modules}"
    [module] = modules
    assert module == HANDLERS_MODULE  # what the other tests run under KopfRunner
    command = ["kopf", "run", "--standalone", "--namespace", NAMESPACE, "-m", module]
    # A process of its own: in this one, the handlers are registered already.
    with (tmp_path / "kopf.log").open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", *command], stdout=log, stderr=subprocess.STDOUT
        )
        try:
            await cluster.create(API_VERSION, FUNCTION_PLURAL, hello())
            await eventually(
                lambda: cluster.object(DEPLOYMENTS, "hello"),
                timeout=30,
                message=f"the Deployment from `{' '.join(command)}`",
            )
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_kopf_logs_in_with_kubeconfig_key_data_held_in_memory(tmp_path, monkeypatch):
    """kind's kubeconfig carries its CA and client key inline ('*-data'): kopf must get
    them as data (our client keeps them in memory, never in a file)."""
    import base64

    from hanshu_operator.startup import login

    pem = {
        kind: f"-----BEGIN {kind}-----\nAAAA\n-----END {kind}-----\n".encode()
        for kind in ("CERTIFICATE", "PRIVATE KEY")
    }
    encoded = {kind: base64.b64encode(data).decode() for kind, data in pem.items()}
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: kind\n"
        "clusters: [{name: kind, cluster: {server: 'https://127.0.0.1:6443', "
        f"certificate-authority-data: {encoded['CERTIFICATE']}}}}}]\n"
        "contexts: [{name: kind, context: {cluster: kind, user: kind}}]\n"
        f"users: [{{name: kind, user: {{client-certificate-data: {encoded['CERTIFICATE']}, "
        f"client-key-data: {encoded['PRIVATE KEY']}}}}}]\n"
    )
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    info = login()
    assert info.ca_data == pem["CERTIFICATE"]
    assert info.certificate_data == pem["CERTIFICATE"]
    assert info.private_key_data == pem["PRIVATE KEY"]
    assert info.ca_path is None
    assert info.certificate_path is None
    assert info.private_key_path is None
