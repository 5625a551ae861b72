"""A small async Kubernetes API client: just the calls Hanshu makes (get, list, create,
merge-patch, apply, delete, watch), authenticated in-cluster or from a kubeconfig
(kube_login.py), logging in again once when the API answers 401.

kopf watches our resources; this client is for the objects kopf does not write for us
(children, the scale subresource, other objects' status) and for the gateway, which runs
without kopf.
"""

from __future__ import annotations

import asyncio
import json
import math
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Mapping
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

import aiohttp

# Where the credentials come from is kube_login's job; these names stay importable here,
# where the components and tests have always found them.
from .kube_login import KubeConfig as KubeConfig
from .kube_login import KubeLoginError as KubeLoginError
from .kube_login import config_from_kubeconfig as config_from_kubeconfig
from .kube_login import load_config as load_config
from .kube_login import ssl_context, tls_settings

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


def api_error(status: int, reason: str | None, text: str) -> ApiError:
    """An error reply as the API server words it (a Status object), else as HTTP does."""
    try:
        body = json.loads(text)
        return ApiError(status, body.get("reason", ""), body.get("message", text))
    except (ValueError, AttributeError):
        return ApiError(status, reason or "", text)


class KubeClient:
    def __init__(self, config: KubeConfig, *, timeout: float = 30.0) -> None:
        self.config = config
        # Per connect and per read, not in total: a total counts the wait for one of the
        # pool's 64 connections too, and a burst of reconciles (10,000 objects at an
        # operator's start) timed out in that queue, not at the API server, then retried.
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=timeout, sock_read=timeout)
        self._session: aiohttp.ClientSession | None = None
        self._token: str | None = config.token
        self._token_read_at = -math.inf
        # Logins since the first: a 401 answered to a request sent under an older login
        # was already dealt with, and a burst of 401s runs an exec plugin once, not per call.
        self._logins = 0
        self._login_lock = asyncio.Lock()

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

    def _can_login_again(self) -> bool:
        return self.config.reload is not None or self.config.token_file is not None

    async def _login_again(self, seen: int) -> None:
        """After a 401 to a request sent under login number ``seen``: the credentials went
        stale (an exec plugin's token expired, the kubelet rotated the pod's token), so take
        them again, as kopf re-authenticates. Connections are made anew only when the TLS
        side changed (a new client certificate); a new token rides on the same ones."""
        async with self._login_lock:
            if self._logins != seen:
                return
            self._logins += 1
            if self.config.reload is not None:
                fresh = await asyncio.to_thread(self.config.reload)
                if tls_settings(fresh) != tls_settings(self.config) and self._session is not None:
                    stale, self._session = self._session, None
                    await stale.close()
                self.config = fresh
                self._token = fresh.token
            self._token_read_at = -math.inf  # the token file, read again at the next call

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
        content_type = content_type or ("application/json" if data else None)
        retried = False
        while True:
            logins = self._logins
            async with self._session_now().request(
                method, path + query, data=data, headers=self._headers(content_type)
            ) as reply:
                text = await reply.text()
                if reply.status < 400:
                    return json.loads(text) if text else None
                error = api_error(reply.status, reply.reason, text)
            if error.status != 401 or retried or not self._can_login_again():
                raise error
            retried = True
            await self._login_again(logins)

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
        retried = False
        while True:
            logins = self._logins
            request = self._session_now().get(
                f"{path}?{urlencode(params)}",
                headers=self._headers(),
                timeout=aiohttp.ClientTimeout(total=None, sock_read=None),
            )
            reply = await _within(idle_timeout, request, path)
            if reply.status != 401 or retried or not self._can_login_again():
                break
            reply.close()
            retried = True
            await self._login_again(logins)
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
