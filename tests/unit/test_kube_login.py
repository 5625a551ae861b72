"""Logging in to the Kubernetes API: a kubeconfig's exec plugin (what EKS and GKE
kubeconfigs use) through the official client's loader, a second login when the API answers
401, the pod's rotated token, and the one line said when the official client is missing.
Against a real HTTP server on loopback that admits only the tokens it is told to."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from hanshu_api import kube_login
from hanshu_api.kube import ApiError, KubeClient, KubeConfig, KubeLoginError, load_config
from hanshu_api.kube_login import config_from_kubeconfig, in_cluster_config

from tests.support.servers import serving

CONFIGMAP = "/api/v1/namespaces/default/configmaps/whoami"
WATCH = "/api/v1/namespaces/default/configmaps"


@dataclass
class ApiServer:
    """Admits a request whose bearer token is in ``admitted``; says 401 to the rest."""

    url: str = ""
    admitted: set[str] = field(default_factory=set)
    seen: list[str | None] = field(default_factory=list)  # each request's Authorization
    on_refusal: list[Any] = field(default_factory=list)  # called at each 401


@pytest.fixture
async def api_server() -> AsyncIterator[ApiServer]:
    server = ApiServer()

    def admitted(request: web.Request) -> bool:
        header = request.headers.get("Authorization")
        server.seen.append(header)
        return header is not None and header.removeprefix("Bearer ") in server.admitted

    def refused() -> web.Response:
        for action in server.on_refusal:
            action()
        status = {"kind": "Status", "reason": "Unauthorized", "message": "Unauthorized"}
        return web.json_response(status, status=401)

    async def get(request: web.Request) -> web.Response:
        if not admitted(request):
            return refused()
        return web.json_response({"metadata": {"name": "whoami"}})

    async def watch(request: web.Request) -> web.StreamResponse:
        if not admitted(request):
            return refused()
        reply = web.StreamResponse()
        await reply.prepare(request)
        added = {"type": "ADDED", "object": {"metadata": {"name": "whoami"}}}
        await reply.write(json.dumps(added).encode() + b"\n")
        await reply.write_eof()
        return reply

    app = web.Application()
    app.router.add_get(CONFIGMAP, get)
    app.router.add_get(WATCH, watch)
    async with serving(app) as port:
        server.url = f"http://127.0.0.1:{port}"
        yield server


def exec_plugin(directory: Path, *tokens: str) -> Path:
    """An exec credential plugin, as `aws eks get-token` is one: each run prints an
    ExecCredential with the next of ``tokens`` (the last one from then on) and counts
    itself in the file ``runs``."""
    script = directory / "get-token"
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, pathlib\n"
        f"runs = pathlib.Path({str(directory / 'runs')!r})\n"
        "done = int(runs.read_text()) if runs.exists() else 0\n"
        "runs.write_text(str(done + 1))\n"
        f"tokens = {list(tokens)!r}\n"
        "print(json.dumps({'apiVersion': 'client.authentication.k8s.io/v1beta1',\n"
        "    'kind': 'ExecCredential',\n"
        "    'status': {'token': tokens[min(done, len(tokens) - 1)]}}))\n"
    )
    script.chmod(0o755)
    return script


def plugin_runs(directory: Path) -> int:
    runs = directory / "runs"
    return int(runs.read_text()) if runs.exists() else 0


def write_kubeconfig(
    path: Path, server: str, user: dict[str, Any], namespace: str | None = None
) -> Path:
    context: dict[str, Any] = {"cluster": "c", "user": "u"}
    if namespace:
        context["namespace"] = namespace
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "c",
                "clusters": [{"name": "c", "cluster": {"server": server}}],
                "contexts": [{"name": "c", "context": context}],
                "users": [{"name": "u", "user": user}],
            }
        )
    )
    return path


def exec_user(plugin: Path) -> dict[str, Any]:
    return {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": str(plugin),
            "interactiveMode": "Never",
        }
    }


async def test_an_exec_plugins_token_reaches_the_server_as_a_bearer_token(
    api_server: ApiServer, tmp_path: Path
):
    api_server.admitted = {"eks-token-1"}
    kubeconfig = write_kubeconfig(
        tmp_path / "kubeconfig", api_server.url, exec_user(exec_plugin(tmp_path, "eks-token-1"))
    )
    kube = KubeClient(load_config({"KUBECONFIG": str(kubeconfig)}))
    try:
        reply = await kube.get(CONFIGMAP)
    finally:
        await kube.close()
    assert reply == {"metadata": {"name": "whoami"}}
    assert api_server.seen == ["Bearer eks-token-1"]


async def test_an_expired_token_logs_in_again_once_and_the_request_goes_through(
    api_server: ApiServer, tmp_path: Path
):
    # The plugin's first token has expired by the time it is used; its second is good.
    api_server.admitted = {"fresh"}
    plugin = exec_plugin(tmp_path, "expired", "fresh")
    kube = KubeClient(
        config_from_kubeconfig(
            str(write_kubeconfig(tmp_path / "kubeconfig", api_server.url, exec_user(plugin)))
        )
    )
    try:
        replies = await asyncio.gather(*(kube.get(CONFIGMAP) for _ in range(5)))
        assert replies == [{"metadata": {"name": "whoami"}}] * 5
        assert plugin_runs(tmp_path) == 2  # at the start, then once for the five 401s
        assert api_server.seen.count("Bearer expired") == 5
        assert api_server.seen.count("Bearer fresh") == 5
        # Later calls carry the new token from the start.
        await kube.get(CONFIGMAP)
        assert api_server.seen[-1] == "Bearer fresh"
        assert plugin_runs(tmp_path) == 2
    finally:
        await kube.close()


async def test_a_watch_refused_with_401_logs_in_again_and_streams(
    api_server: ApiServer, tmp_path: Path
):
    api_server.admitted = {"fresh"}
    plugin = exec_plugin(tmp_path, "expired", "fresh")
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", api_server.url, exec_user(plugin))
    kube = KubeClient(config_from_kubeconfig(str(kubeconfig)))
    try:
        events = [event async for event in kube.watch(WATCH, idle_timeout=10)]
    finally:
        await kube.close()
    assert [event["type"] for event in events] == ["ADDED"]
    assert api_server.seen == ["Bearer expired", "Bearer fresh"]


async def test_credentials_still_refused_after_a_second_login_are_an_error(
    api_server: ApiServer, tmp_path: Path
):
    api_server.admitted = {"never-issued"}
    plugin = exec_plugin(tmp_path, "revoked")
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", api_server.url, exec_user(plugin))
    kube = KubeClient(config_from_kubeconfig(str(kubeconfig)))
    try:
        with pytest.raises(ApiError) as refused:
            await kube.get(CONFIGMAP)
    finally:
        await kube.close()
    assert refused.value.status == 401
    assert api_server.seen == ["Bearer revoked"] * 2  # one retry, not a loop


async def test_settings_given_by_hand_are_not_retried(api_server: ApiServer):
    # Nothing to load again: the 401 is the answer.
    kube = KubeClient(KubeConfig(server=api_server.url, token="wrong"))
    try:
        with pytest.raises(ApiError, match="401"):
            await kube.get(CONFIGMAP)
    finally:
        await kube.close()
    assert api_server.seen == ["Bearer wrong"]


async def test_a_rotated_service_account_token_is_read_again_at_a_401(
    api_server: ApiServer, tmp_path: Path
):
    # The kubelet rewrites the projected token file; the old token stops being accepted.
    account = tmp_path / "serviceaccount"
    account.mkdir()
    (account / "token").write_text("first\n")
    (account / "namespace").write_text("hanshu-system\n")
    api_server.admitted = {"first"}
    config = in_cluster_config("127.0.0.1", "443", account)
    assert config.namespace == "hanshu-system"
    kube = KubeClient(KubeConfig(server=api_server.url, token_file=config.token_file))
    try:
        await kube.get(CONFIGMAP)
        api_server.admitted = {"second"}
        api_server.on_refusal.append(lambda: (account / "token").write_text("second\n"))
        await kube.get(CONFIGMAP)
    finally:
        await kube.close()
    assert api_server.seen == ["Bearer first", "Bearer first", "Bearer second"]


def test_the_contexts_namespace_and_a_named_context_are_honoured(tmp_path: Path):
    kubeconfig = write_kubeconfig(
        tmp_path / "kubeconfig", "http://127.0.0.1:1", {"token": "t"}, namespace="team-a"
    )
    document = yaml.safe_load(kubeconfig.read_text())
    document["clusters"].append({"name": "other", "cluster": {"server": "http://127.0.0.1:2"}})
    document["contexts"].append({"name": "o", "context": {"cluster": "other", "user": "u"}})
    kubeconfig.write_text(yaml.safe_dump(document))
    current = config_from_kubeconfig(str(kubeconfig))
    assert (current.server, current.namespace, current.token) == (
        "http://127.0.0.1:1",
        "team-a",
        "t",
    )
    named = config_from_kubeconfig(str(kubeconfig), context="o")
    assert (named.server, named.namespace) == ("http://127.0.0.1:2", "default")


def test_a_token_file_in_the_kubeconfig_is_relative_to_it(tmp_path: Path):
    (tmp_path / "token").write_text("from-a-file\n")
    kubeconfig = write_kubeconfig(
        tmp_path / "kubeconfig", "http://127.0.0.1:1", {"tokenFile": "token"}
    )
    assert config_from_kubeconfig(str(kubeconfig)).token == "from-a-file"


def test_without_the_official_client_a_kubeconfig_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    for module in ("kubernetes", "kubernetes.client", "kubernetes.config"):
        monkeypatch.setitem(sys.modules, module, None)  # import raises ImportError
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", "http://127.0.0.1:1", {"token": "t"})
    with pytest.raises(KubeLoginError) as missing:
        load_config({"KUBECONFIG": str(kubeconfig)})
    assert "pip install" in str(missing.value)
    assert "hanshu[kubeconfig]" in str(missing.value)
    assert "\n" not in str(missing.value)


def test_in_a_pod_the_service_account_logs_in_without_the_official_client(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    for module in ("kubernetes", "kubernetes.client", "kubernetes.config"):
        monkeypatch.setitem(sys.modules, module, None)
    monkeypatch.setattr(kube_login, "SERVICE_ACCOUNT_DIR", tmp_path)
    (tmp_path / "token").write_text("pod-token\n")
    (tmp_path / "namespace").write_text("hanshu-system\n")
    env = {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "6443"}
    config = load_config(env)
    assert config.server == "https://[fd00::1]:6443"
    assert config.token_file == str(tmp_path / "token")  # read by the client, as it rotates
    assert config.ca_file == str(tmp_path / "ca.crt")
    assert config.namespace == "hanshu-system"


def test_a_broken_kubeconfig_is_a_login_error_naming_the_file(tmp_path: Path):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({"current-context": "missing", "contexts": []}))
    with pytest.raises(KubeLoginError, match=str(kubeconfig)):
        config_from_kubeconfig(str(kubeconfig))
