"""A small async Kubernetes API client: just the calls Hanshu makes (get, list, create,
merge-patch, apply, delete, watch), authenticated in-cluster or from a kubeconfig.

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
from collections.abc import AsyncIterator, Awaitable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

import aiohttp

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
MERGE_PATCH = "application/merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"  # JSON is YAML: the body is sent as JSON
_TOKEN_REREAD_SECONDS = 60.0  # bound service-account tokens rotate; re-read the file
# An event is one object; etcd caps objects at 1.5 MiB, and JSON framing adds little.
_MAX_EVENT_BYTES = 16 * 1024 * 1024
LIST_PAGE_SIZE = 500  # client-go's reflector pages its lists by 500 as well
T = TypeVar("T")


class ApiError(Exception):
    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


class WatchIdle(TimeoutError):
    """Nothing (no event, no bookmark) arrived on a watch within its idle bound: the
    connection is presumed dead, though no error ever said so."""


@dataclass(frozen=True, slots=True)
class KubeConfig:
    """Where the API is and who we are. Credentials given inline (a kubeconfig's '*-data'
    fields) stay in memory as PEM bytes: never in files that outlive loading them."""

    server: str
    token: str | None = field(default=None, repr=False)  # a config may end up in a log
    token_file: str | None = None
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    insecure: bool = False
    namespace: str = "default"
    ca_data: bytes | None = field(default=None, repr=False)
    cert_data: bytes | None = field(default=None, repr=False)
    key_data: bytes | None = field(default=None, repr=False)


def _inline(data_b64: str | None) -> bytes | None:
    return base64.b64decode(data_b64) if data_b64 else None


def _file_unless_inline(data_b64: str | None, path: str | None) -> str | None:
    # As in kubectl, the '*-data' field overrides the file it stands for.
    return None if data_b64 else path


def _pem_text(data: bytes) -> str | bytes:
    # ssl's cadata takes PEM as text and DER as bytes.
    return data.decode("ascii") if data.lstrip().startswith(b"-----BEGIN") else data


def _read(path: str | None) -> bytes | None:
    return Path(path).read_bytes() if path else None


@contextmanager
def _written(cert: bytes, key: bytes) -> Iterator[tuple[str, str]]:
    """The client certificate and key as files only while ssl loads them: ssl has no
    in-memory API for a chain. A private directory (0700), removed on the way out."""
    with tempfile.TemporaryDirectory(prefix="hanshu-tls-") as directory:
        os.chmod(directory, 0o700)
        paths = (os.path.join(directory, "client.crt"), os.path.join(directory, "client.key"))
        for path, data in zip(paths, (cert, key), strict=True):
            handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(handle, "wb") as file:
                file.write(data)
        yield paths


def ssl_context(config: KubeConfig) -> ssl.SSLContext:
    """Verifies the server against the configured CA (else the system's) and presents the
    client certificate when there is one, from files or from inline data."""
    context = ssl.create_default_context(
        cafile=config.ca_file, cadata=_pem_text(config.ca_data) if config.ca_data else None
    )
    if config.cert_data or config.key_data:
        cert = config.cert_data or _read(config.cert_file)
        key = config.key_data or _read(config.key_file)
        if cert and key:
            with _written(cert, key) as (cert_path, key_path):
                context.load_cert_chain(cert_path, key_path)
    elif config.cert_file and config.key_file:
        context.load_cert_chain(config.cert_file, config.key_file)
    return context


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

    ca_data = cluster.get("certificate-authority-data")
    cert_data = user.get("client-certificate-data")
    key_data = user.get("client-key-data")
    return KubeConfig(
        server=str(cluster["server"]).rstrip("/"),
        token=user.get("token"),
        token_file=rel(user.get("tokenFile")),
        ca_file=_file_unless_inline(ca_data, rel(cluster.get("certificate-authority"))),
        cert_file=_file_unless_inline(cert_data, rel(user.get("client-certificate"))),
        key_file=_file_unless_inline(key_data, rel(user.get("client-key"))),
        insecure=bool(cluster.get("insecure-skip-tls-verify", False)),
        namespace=ctx.get("namespace") or "default",
        ca_data=_inline(ca_data),
        cert_data=_inline(cert_data),
        key_data=_inline(key_data),
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


async def _within(seconds: float | None, step: Awaitable[T], path: str) -> T:
    """One step of a watch under the idle bound. Each await is bounded on its own: a
    timeout spanning the generator's yields would cancel the consumer's code instead."""
    if seconds is None:
        return await step
    try:
        async with asyncio.timeout(seconds):
            return await step
    except TimeoutError:
        raise WatchIdle(f"nothing from the watch of {path} in {seconds:g}s") from None


class KubeClient:
    def __init__(self, config: KubeConfig, *, timeout: float = 30.0) -> None:
        self.config = config
        # Per connect and per read, not in total: a total counts the wait for one of the
        # pool's 64 connections too, and a burst of reconciles (10,000 objects at an
        # operator's start) timed out in that queue, not at the API server, then retried.
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=timeout, sock_read=timeout)
        self._session: aiohttp.ClientSession | None = None
        self._token: str | None = config.token
        self._token_read_at = 0.0

    def _ssl(self) -> ssl.SSLContext | bool:
        if not self.config.server.startswith("https"):
            return False
        if self.config.insecure:
            return False
        return ssl_context(self.config)

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

    async def apply(
        self, path: str, manifest: Mapping[str, Any], field_manager: str, *, force: bool = True
    ) -> dict[str, Any]:
        """Server-side apply of a whole desired object (creating it when missing).

        Unlike a merge patch, a field this manager applied before and omits now is removed
        (unless another manager owns it): a deleted toleration or ConfigMap key goes away.
        ``force`` takes over fields another manager set (a user's ``kubectl edit``), as a
        controller should; fields the manager never sends (``spec.replicas``) stay theirs.
        Without it, a field another manager holds with another value is a 409 ApiError.
        """
        result: dict[str, Any] = await self.request(
            "PATCH",
            path,
            body=manifest,
            content_type=APPLY_PATCH,
            params={"fieldManager": field_manager, **({"force": "true"} if force else {})},
        )
        return result

    async def delete(self, path: str) -> None:
        try:
            await self.request("DELETE", path)
        except ApiError as error:
            if error.status != 404:
                raise

    async def list_with_version(
        self, path: str, label_selector: str | None = None, *, page_size: int = LIST_PAGE_SIZE
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Every item, in pages of ``page_size`` as client-go's reflector lists: a page is
        parsed while the next is on its way, and no reply holds 10,000 objects at once.
        The pages are one consistent snapshot; the last one's resourceVersion is the list's.
        An expired continue token is a 410 ApiError: the caller lists again."""
        items: list[dict[str, Any]] = []
        params = {"limit": str(page_size)}
        if label_selector:
            params["labelSelector"] = label_selector
        while True:
            result = await self.request("GET", path, params=params) or {}
            items += result.get("items") or []
            meta = result.get("metadata") or {}
            token = meta.get("continue")
            if not token:
                return items, meta.get("resourceVersion")
            params["continue"] = token

    async def watch(
        self,
        path: str,
        label_selector: str | None = None,
        resource_version: str | None = None,
        *,
        timeout_seconds: int | None = None,
        idle_timeout: float | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """Events ({type, object}) of a watch stream, BOOKMARK and ERROR events included;
        the caller restarts it when it ends.

        ``timeout_seconds`` asks the server to end the stream (it sends a last bookmark
        first); ``idle_timeout`` raises WatchIdle when nothing at all arrives for that
        long, connecting included: a connection that died silently never ends by itself.
        """
        params = {"watch": "true", "allowWatchBookmarks": "true"}
        if label_selector:
            params["labelSelector"] = label_selector
        if resource_version:
            params["resourceVersion"] = resource_version
        if timeout_seconds is not None:
            params["timeoutSeconds"] = str(timeout_seconds)
        request = self._session_now().get(
            f"{path}?{urlencode(params)}",
            headers=self._headers(),
            timeout=aiohttp.ClientTimeout(total=None, sock_read=None),
        )
        reply = await _within(idle_timeout, request, path)
        try:
            if reply.status >= 400:
                text = await _within(idle_timeout, reply.text(), path)
                raise ApiError(reply.status, reply.reason or "", text)
            pending = bytearray()
            while chunk := await _within(idle_timeout, reply.content.readany(), path):
                pending += chunk
                # Split by hand: aiohttp's readline refuses a line longer than its read
                # buffer (128 to 512 KiB by version), and an event is one line: a Function
                # with a lot of inline code is longer.
                *lines, rest = pending.split(b"\n")
                if len(rest) > _MAX_EVENT_BYTES:
                    raise ValueError(f"a watch event of {path} is over {_MAX_EVENT_BYTES} bytes")
                pending = bytearray(rest)
                for line in lines:
                    if line.strip():
                        yield json.loads(line)
            if pending.strip():  # a last event without its newline (or a torn one: raises)
                yield json.loads(pending)
        finally:
            reply.close()  # a stream cut short cannot go back to the pool
