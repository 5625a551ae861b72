"""The gateway in a cluster: Triggers, Functions and EndpointSlices from the Kubernetes API
(list, then watch, re-listing after any break), API keys read from Secrets on demand."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from hanshu_api import API_VERSION, FUNCTION_PLURAL, LABEL_FUNCTION, TRIGGER_PLURAL
from hanshu_api.kube import ApiError, KubeClient, load_config, path_for
from hanshu_api.models import SpecInvalid, TriggerSpec, parse_function_spec, parse_trigger_spec
from hanshu_api.platform import Endpoint, FunctionKey

from .catalog import Catalog
from .server import Gateway, GatewayConfig, config_from_env

log = logging.getLogger("hanshu.gateway")
SECRET_CACHE_SECONDS = 10.0


def _key(obj: Mapping[str, Any]) -> FunctionKey:
    meta = obj.get("metadata") or {}
    return (str(meta.get("namespace", "")), str(meta.get("name", "")))


def ready_endpoints(endpoint_slice: Mapping[str, Any]) -> list[Endpoint]:
    """The ready, not terminating, endpoints of a slice, on its port named 'http'."""
    port = next(
        (p.get("port") for p in endpoint_slice.get("ports") or [] if p.get("name") == "http"), None
    )
    if port is None:
        return []
    found = []
    for endpoint in endpoint_slice.get("endpoints") or []:
        conditions = endpoint.get("conditions") or {}
        if conditions.get("ready", True) is False or conditions.get("terminating") is True:
            continue  # a draining pod finishes its requests but takes no new ones
        found += [Endpoint(address, int(port)) for address in endpoint.get("addresses") or []]
    return found


class KubeGateway:
    def __init__(
        self, config: GatewayConfig, kube: KubeClient, namespaces: tuple[str, ...] = ()
    ) -> None:
        self.kube = kube
        self.namespaces = namespaces or ("",)
        self.catalog = Catalog(config.queue_limit, self.read_secret)
        self.gateway = Gateway(config, self.catalog)
        self._triggers: dict[FunctionKey, TriggerSpec] = {}
        self._slices: dict[FunctionKey, tuple[FunctionKey, list[Endpoint]]] = {}
        self._secrets: dict[tuple[str, str], tuple[float, dict[str, str] | None]] = {}
        self._tasks: list[asyncio.Task[None]] = []

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> KubeGateway:
        namespaces = tuple(
            n.strip() for n in env.get("HANSHU_WATCH_NAMESPACES", "").split(",") if n.strip()
        )
        return cls(config_from_env(env), KubeClient(load_config(env)), namespaces)

    async def read_secret(self, namespace: str, name: str, key: str) -> str | None:
        cached = self._secrets.get((namespace, name))
        if cached is None or time.monotonic() - cached[0] > SECRET_CACHE_SECONDS:
            secret = await self.kube.get(path_for("v1", "secrets", namespace, name))
            data = (
                None
                if secret is None
                else {
                    k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()
                }
            )
            cached = (time.monotonic(), data)
            self._secrets[(namespace, name)] = cached
        return None if cached[1] is None else cached[1].get(key)

    # -- what the watches feed ------------------------------------------------------------

    def on_trigger(self, kind: str, obj: Mapping[str, Any]) -> None:
        key = _key(obj)
        if kind == "DELETED":
            self._triggers.pop(key, None)
        else:
            try:
                self._triggers[key] = parse_trigger_spec(obj.get("spec") or {}, key[0])
            except SpecInvalid as error:  # the operator reports it on the Trigger
                log.warning("ignoring Trigger %s/%s: %s", *key, error)
                self._triggers.pop(key, None)
        self.catalog.set_triggers((ns, name, spec) for (ns, name), spec in self._triggers.items())

    def on_function(self, kind: str, obj: Mapping[str, Any]) -> None:
        key = _key(obj)
        if kind == "DELETED":
            self.catalog.set_function(key, None)
            return
        try:
            self.catalog.set_function(key, parse_function_spec(obj.get("spec") or {}))
        except SpecInvalid:
            self.catalog.set_function(key, None)

    def on_endpoint_slice(self, kind: str, obj: Mapping[str, Any]) -> None:
        slice_key = _key(obj)
        function = ((obj.get("metadata") or {}).get("labels") or {}).get(LABEL_FUNCTION)
        if kind == "DELETED" or not function:
            known = self._slices.pop(slice_key, None)
            affected = known[0] if known else None
        else:
            affected = (slice_key[0], function)
            self._slices[slice_key] = (affected, ready_endpoints(obj))
        if affected is not None:
            endpoints = [
                e for owner, found in self._slices.values() if owner == affected for e in found
            ]
            self.catalog.set_endpoints(affected, endpoints)

    # -- watching -------------------------------------------------------------------------

    async def _follow(
        self,
        api_version: str,
        plural: str,
        namespace: str,
        handle: Callable[[str, Mapping[str, Any]], None],
        label_selector: str | None = None,
    ) -> None:
        path = path_for(api_version, plural, namespace or None)
        seen: set[FunctionKey] = set()
        while True:
            try:
                items, version = await self.kube.list_with_version(path, label_selector)
                current = {_key(item) for item in items}
                for gone in seen - current:  # deleted while we were not watching
                    handle("DELETED", {"metadata": {"namespace": gone[0], "name": gone[1]}})
                for item in items:
                    handle("ADDED", item)
                seen = current
                async for event in self.kube.watch(path, label_selector, version):
                    if event.get("type") in ("ADDED", "MODIFIED", "DELETED"):
                        handle(event["type"], event["object"])
                        key = _key(event["object"])
                        (seen.discard if event["type"] == "DELETED" else seen.add)(key)
            except (ApiError, OSError, TimeoutError, ValueError) as error:
                log.warning("watching %s stopped (%s); listing again", plural, error)
                await asyncio.sleep(1)
            except Exception as error:  # aiohttp payload errors and the like
                log.warning("watching %s broke (%s); listing again", plural, error)
                await asyncio.sleep(1)

    def _watches(self) -> list[Awaitable[None]]:
        watches: list[Awaitable[None]] = []
        for namespace in self.namespaces:
            watches += [
                self._follow(API_VERSION, TRIGGER_PLURAL, namespace, self.on_trigger),
                self._follow(API_VERSION, FUNCTION_PLURAL, namespace, self.on_function),
                self._follow(
                    "discovery.k8s.io/v1",
                    "endpointslices",
                    namespace,
                    self.on_endpoint_slice,
                    label_selector=LABEL_FUNCTION,
                ),
            ]
        return watches

    async def start(self) -> None:
        await self.gateway.start()
        self._tasks = [asyncio.ensure_future(watch) for watch in self._watches()]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await self.gateway.close()
        await self.kube.close()
