"""What the autoscaler knows of the cluster, by list and watch: each Function's scaling
spec (its Functions) and each Function's replica count (its Deployments, the operator's
children, by the managed-by label). Both replicas keep it, so a standby that takes over
decides from a current picture at once.

Cost: one ``Scaling`` and one int per Function; a watch per kind and namespace (or one
cluster-wide), listed again only when the API says the position is gone (410) or the
stream breaks.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from hanshu_api import API_VERSION, FUNCTION_PLURAL, LABEL_FUNCTION, LABEL_MANAGED_BY, MANAGED_BY
from hanshu_api.kube import ApiError, KubeClient, WatchIdle, path_for
from hanshu_api.models import Scaling, SpecInvalid, parse_function_spec
from hanshu_api.platform import FunctionKey
from hanshu_api.versions import FUNCTION_VERSION_PLURAL, version_key

from .kube_scaler import KubeScaler

log = logging.getLogger("hanshu.autoscaler.catalog")

MANAGED_SELECTOR = f"{LABEL_MANAGED_BY}={MANAGED_BY}"
Handler = Callable[[str, Mapping[str, Any]], None]


def _key(obj: Mapping[str, Any]) -> FunctionKey:
    meta = obj.get("metadata") or {}
    return (str(meta.get("namespace") or ""), str(meta.get("name") or ""))


def scaling_of(function: Mapping[str, Any]) -> Scaling | None:
    """The Function's scaling; None for a spec the operator refuses (it has no Deployment)."""
    try:
        return parse_function_spec(function.get("spec") or {}).scaling
    except (SpecInvalid, ValueError, TypeError):
        return None


def version_scaling(version: Mapping[str, Any]) -> tuple[FunctionKey, Scaling | None]:
    """A published version (FunctionVersion) scales like a Function of its own: its key is
    ``version_key(function, N)``, its scaling its snapshot's (docs/versions.md)."""
    meta = version.get("metadata") or {}
    spec = version.get("spec") or {}
    function, number = spec.get("function"), spec.get("version")
    if not isinstance(function, str) or not isinstance(number, int):
        return (str(meta.get("namespace") or ""), str(meta.get("name") or "")), None
    key = (str(meta.get("namespace") or ""), version_key(function, number))
    return key, scaling_of({"spec": spec.get("template") or {}})


class Catalog:
    def __init__(
        self,
        kube: KubeClient,
        scaler: KubeScaler,
        namespaces: Iterable[str] = (),
        *,
        on_gone: Callable[[FunctionKey], None] = lambda key: None,
        idle_seconds: float = 330.0,
    ) -> None:
        self.kube = kube
        self.scaler = scaler
        self.namespaces: tuple[str | None, ...] = tuple(namespaces) or (None,)
        self.on_gone = on_gone
        self.idle_seconds = idle_seconds
        self.scaling: dict[FunctionKey, Scaling] = {}
        self.listed = asyncio.Event()
        # Also told of every Function as the watch sees it (the canary controller).
        self.function_observers: list[Handler] = []
        self._lists_done = 0

    def functions(self) -> list[tuple[FunctionKey, Scaling]]:
        return list(self.scaling.items())

    def on_function(self, kind: str, function: Mapping[str, Any]) -> None:
        for observer in self.function_observers:
            observer(kind, function)
        key = _key(function)
        scaling = None if kind == "DELETED" else scaling_of(function)
        if scaling is None:
            if self.scaling.pop(key, None) is not None:
                self.on_gone(key)
        else:
            self.scaling[key] = scaling

    def on_function_version(self, kind: str, version: Mapping[str, Any]) -> None:
        """A version's replicas exist only while it is referenced (the operator's rule);
        its scaling is known from its publication, so its first request wakes it."""
        key, scaling = version_scaling(version)
        if kind == "DELETED" or scaling is None:
            if self.scaling.pop(key, None) is not None:
                self.on_gone(key)
        else:
            self.scaling[key] = scaling

    def on_deployment(self, kind: str, deployment: Mapping[str, Any]) -> None:
        meta = deployment.get("metadata") or {}
        name = (meta.get("labels") or {}).get(LABEL_FUNCTION)
        if not name:
            return
        replicas = None if kind == "DELETED" else (deployment.get("spec") or {}).get("replicas")
        self.scaler.observe((str(meta.get("namespace") or ""), name), replicas)

    async def run(self) -> None:
        watches: list[Awaitable[None]] = []
        for namespace in self.namespaces:
            watches.append(
                self.follow(path_for(API_VERSION, FUNCTION_PLURAL, namespace), self.on_function)
            )
            watches.append(
                self.follow(
                    path_for(API_VERSION, FUNCTION_VERSION_PLURAL, namespace),
                    self.on_function_version,
                )
            )
            watches.append(
                self.follow(
                    path_for("apps/v1", "deployments", namespace),
                    self.on_deployment,
                    MANAGED_SELECTOR,
                )
            )
        await asyncio.gather(*watches)

    async def follow(self, path: str, handle: Handler, selector: str | None = None) -> None:
        """List, then watch from the list's version; list again when the position is lost
        (410) and after a broken stream, with a growing pause between failures."""
        version: str | None = None
        seen: set[FunctionKey] = set()
        failures = 0
        while True:
            try:
                if version is None:
                    items, version = await self.kube.list_with_version(path, selector)
                    current = {_key(item) for item in items}
                    for namespace, name in seen - current:  # deleted while nobody watched
                        handle("DELETED", {"metadata": {"namespace": namespace, "name": name}})
                    for item in items:
                        handle("ADDED", item)
                    seen = current
                    self._count_listed()
                async for event in self.kube.watch(
                    path,
                    selector,
                    version,
                    timeout_seconds=240 + random.randrange(60),  # noqa: S311
                    idle_timeout=self.idle_seconds,
                ):
                    kind, obj = str(event.get("type")), event.get("object") or {}
                    if kind == "ERROR":
                        raise ApiError(int(obj.get("code") or 500), "", str(obj.get("message")))
                    version = (obj.get("metadata") or {}).get("resourceVersion") or version
                    if kind in ("ADDED", "MODIFIED", "DELETED"):
                        handle(kind, obj)
                        (seen.discard if kind == "DELETED" else seen.add)(_key(obj))
                failures = 0
            except WatchIdle:
                continue  # resume from the same position
            except asyncio.CancelledError:
                raise
            except Exception as error:
                if isinstance(error, ApiError) and error.status == 410:
                    version = None  # the position is gone: list again
                    continue
                failures += 1
                version = None
                log.warning("watching %s: %s", path, error)
                await asyncio.sleep(min(30.0, 0.5 * 2 ** min(failures, 6)))

    def _count_listed(self) -> None:
        self._lists_done += 1
        # Functions, FunctionVersions and Deployments, in each namespace.
        if self._lists_done >= 3 * len(self.namespaces):
            self.listed.set()
