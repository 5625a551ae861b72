"""A small async Kubernetes API client: just the calls Hanshu makes (get, list, create,
merge-patch, delete, watch), authenticated in-cluster or from a kubeconfig.

kopf watches our resources; this client is for the objects kopf does not write for us
(children, the scale subresource, other objects' status) and for the gateway, which runs
without kopf.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import ssl
import tempfile
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
MERGE_PATCH = "application/merge-patch+json"
_TOKEN_REREAD_SECONDS = 60.0  # bound service-account tokens rotate; re-read the file


class ApiError(Exception):
    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


@dataclass(frozen=True, slots=True)
class KubeConfig:
    server: str
    token: str | None = None
    token_file: str | None = None
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    insecure: bool = False
    namespace: str = "default"


def _materialize(data_b64: str | None, path: str | None, suffix: str) -> str | None:
    """kubeconfig '*-data' fields become files, since ssl wants paths."""
    if path or not data_b64:
        return path
    handle = tempfile.NamedTemporaryFile(prefix="hanshu-", suffix=suffix, delete=False)  # noqa: SIM115
    with handle:
        handle.write(base64.b64decode(data_b64))
    return handle.name


def config_from_kubeconfig(path: str, context: str | None = None) -> KubeConfig:
    import yaml

    document = yaml.safe_load(Path(path).read_text()) or {}
    context_name = context or document.get("current-context")
    contexts = {c["name"]: c.get("context", {}) for c in document.get("contexts") or []}
    clusters = {c["name"]: c.get("cluster", {}) for c in document.get("clusters") or []}
    users = {u["name"]: u.get("user", {}) or {} for u in document.get("users") or []}
    if context_name not in contexts:
        raise ValueError(f"kubeconfig {path} has no context {context_name!r}")
    ctx = contexts[context_name]
    cluster = clusters.get(ctx.get("cluster"), {})
    user = users.get(ctx.get("user"), {})
    base = Path(path).parent

    def rel(p: str | None) -> str | None:
        return str(base / p) if p else None

    return KubeConfig(
        server=str(cluster["server"]).rstrip("/"),
        token=user.get("token"),
        token_file=rel(user.get("tokenFile")),
        ca_file=_materialize(
            cluster.get("certificate-authority-data"),
            rel(cluster.get("certificate-authority")),
            ".crt",
        ),
        cert_file=_materialize(
            user.get("client-certificate-data"), rel(user.get("client-certificate")), ".crt"
        ),
        key_file=_materialize(user.get("client-key-data"), rel(user.get("client-key")), ".key"),
        insecure=bool(cluster.get("insecure-skip-tls-verify", False)),
        namespace=ctx.get("namespace") or "default",
    )


def load_config(env: Mapping[str, str] = os.environ) -> KubeConfig:
    """KUBECONFIG when set; else the pod's service account; else ~/.kube/config."""
    if env.get("KUBECONFIG"):
        return config_from_kubeconfig(env["KUBECONFIG"].split(os.pathsep)[0])
    host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT", "443")
    if host and (SERVICE_ACCOUNT_DIR / "token").exists():
        namespace_file = SERVICE_ACCOUNT_DIR / "namespace"
        return KubeConfig(
            server=f"https://{host}:{port}" if ":" not in host else f"https://[{host}]:{port}",
            token_file=str(SERVICE_ACCOUNT_DIR / "token"),
            ca_file=str(SERVICE_ACCOUNT_DIR / "ca.crt"),
            namespace=namespace_file.read_text().strip() if namespace_file.exists() else "default",
        )
    home_config = Path.home() / ".kube" / "config"
    if home_config.exists():
        return config_from_kubeconfig(str(home_config))
    raise RuntimeError(
        "no Kubernetes credentials: set KUBECONFIG, run in a pod with a service account, "
        "or create ~/.kube/config"
    )


def path_for(
    api_version: str,
    plural: str,
    namespace: str | None = None,
    name: str | None = None,
    subresource: str | None = None,
) -> str:
    root = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    parts = [root]
    if namespace:
        parts.append(f"namespaces/{quote(namespace)}")
    parts.append(plural)
    if name:
        parts.append(quote(name))
    if subresource:
        parts.append(subresource)
    return "/".join(parts)


class KubeClient:
    def __init__(self, config: KubeConfig, *, timeout: float = 30.0) -> None:
        self.config = config
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None
        self._token: str | None = config.token
        self._token_read_at = 0.0

    def _ssl(self) -> ssl.SSLContext | bool:
        if not self.config.server.startswith("https"):
            return False
        if self.config.insecure:
            return False
        context = ssl.create_default_context(cafile=self.config.ca_file)
        if self.config.cert_file and self.config.key_file:
            context.load_cert_chain(self.config.cert_file, self.config.key_file)
        return context

    def _session_now(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                base_url=self.config.server,
                timeout=self._timeout,
                connector=aiohttp.TCPConnector(ssl=self._ssl(), limit=64),
            )
        return self._session

    def _headers(self, content_type: str | None = None) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if (
            self.config.token_file
            and time.monotonic() - self._token_read_at > _TOKEN_REREAD_SECONDS
        ):
            self._token = Path(self.config.token_file).read_text().strip()
            self._token_read_at = time.monotonic()
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        content_type: str | None = None,
        params: Mapping[str, str] | None = None,
    ) -> Any:
        data = None if body is None else json.dumps(body)
        query = f"?{urlencode(params)}" if params else ""
        async with self._session_now().request(
            method,
            path + query,
            data=data,
            headers=self._headers(content_type or ("application/json" if data else None)),
        ) as reply:
            text = await reply.text()
            if reply.status >= 400:
                try:
                    status = json.loads(text)
                    raise ApiError(
                        reply.status, status.get("reason", ""), status.get("message", text)
                    )
                except (ValueError, AttributeError):
                    raise ApiError(reply.status, reply.reason or "", text) from None
            return json.loads(text) if text else None

    async def get(self, path: str) -> dict[str, Any] | None:
        try:
            result: dict[str, Any] = await self.request("GET", path)
            return result
        except ApiError as error:
            if error.status == 404:
                return None
            raise

    async def list_items(
        self, path: str, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        params = {"labelSelector": label_selector} if label_selector else None
        result = await self.request("GET", path, params=params)
        return list(result.get("items") or []) if result else []

    async def create(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("POST", path, body=body)
        return result

    async def merge_patch(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = await self.request(
            "PATCH", path, body=body, content_type=MERGE_PATCH
        )
        return result

    async def delete(self, path: str) -> None:
        try:
            await self.request("DELETE", path)
        except ApiError as error:
            if error.status != 404:
                raise

    async def list_with_version(
        self, path: str, label_selector: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        params = {"labelSelector": label_selector} if label_selector else None
        result = await self.request("GET", path, params=params) or {}
        version = (result.get("metadata") or {}).get("resourceVersion")
        return list(result.get("items") or []), version

    async def watch(
        self, path: str, label_selector: str | None = None, resource_version: str | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """Events ({type, object}) of a watch stream; the caller restarts it when it ends."""
        params = {"watch": "true", "allowWatchBookmarks": "true"}
        if label_selector:
            params["labelSelector"] = label_selector
        if resource_version:
            params["resourceVersion"] = resource_version
        async with self._session_now().get(
            f"{path}?{urlencode(params)}",
            headers=self._headers(),
            timeout=aiohttp.ClientTimeout(total=None, sock_read=None),
        ) as reply:
            if reply.status >= 400:
                raise ApiError(reply.status, reply.reason or "", await reply.text())
            async for line in reply.content:
                if line.strip():
                    yield json.loads(line)
            await asyncio.sleep(0)
