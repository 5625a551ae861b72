"""The cluster, through the official ``kubernetes`` client: every kubeconfig users have works
(contexts, exec plugins of EKS / GKE / AKS, in-cluster service accounts), and every failure
becomes one line naming what was tried."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import urllib3
from hanshu_api import FUNCTION_PLURAL, GROUP, LABEL_FUNCTION, TRIGGER_PLURAL, VERSION
from hanshu_api.versions import FUNCTION_VERSION_KIND, FUNCTION_VERSION_PLURAL
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from .errors import CliError

# The operator's pool Deployment in a pooled namespace (hanshu_operator.pool_builders).
POOL_DEPLOYMENT = "hanshu-pool"

T = TypeVar("T")
FIELD_MANAGER = "hanshu-cli"
APPLY_CONTENT_TYPE = "application/apply-patch+yaml"
REQUEST_TIMEOUT_SECONDS = 15.0
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
INSTALL_HINT = (
    "Hanshu is not installed in this cluster (no functions.hanshu.io): helm install hanshu "
    "charts/hanshu --namespace hanshu-system --create-namespace (see docs/install.md)"
)
GATEWAY_SELECTOR = "app.kubernetes.io/name=hanshu,app.kubernetes.io/component=gateway"
GATEWAY_INTERNAL_PORT = 8081


@dataclass(frozen=True)
class Target:
    """Which cluster and namespace, as kubectl's flags say it."""

    kubeconfig: str | None = None
    context: str | None = None
    namespace: str | None = None


def kubeconfig_files(given: str | None) -> str:
    """The kubeconfig path(s) kubectl would read: the flag, else $KUBECONFIG, else
    ~/.kube/config (read now, not when the client library was imported)."""
    return given or os.environ.get("KUBECONFIG") or str(Path("~/.kube/config").expanduser())


class Cluster:
    """One connection to the API server, with the calls the commands make."""

    def __init__(self, api: Any, namespace: str, where: str) -> None:
        self.api = api
        self.namespace = namespace
        self.where = where
        self.server = str(api.configuration.host)
        self.core = client.CoreV1Api(api)
        self.apps = client.AppsV1Api(api)
        self.custom = client.CustomObjectsApi(api)

    @classmethod
    def connect(cls, target: Target) -> Cluster:
        files = kubeconfig_files(target.kubeconfig)
        configuration = client.Configuration()
        exists = any(Path(p).expanduser().exists() for p in files.split(os.pathsep) if p)
        if not exists and target.kubeconfig is None and "KUBERNETES_SERVICE_HOST" in os.environ:
            try:
                config.load_incluster_config(client_configuration=configuration)
            except ConfigException as bad:
                raise CliError(f"cannot use the in-cluster service account: {bad}") from bad
            namespace = target.namespace or _service_account_namespace()
            where = "the in-cluster service account"
        else:
            if not exists:
                raise CliError(
                    f"no kubeconfig at {files}: pass --kubeconfig, set KUBECONFIG, or create "
                    "a cluster (make kind-up)"
                )
            try:
                contexts, active = config.list_kube_config_contexts(config_file=files)
                chosen = active
                if target.context is not None:
                    chosen = next((c for c in contexts if c["name"] == target.context), None)
                    if chosen is None:
                        names = ", ".join(c["name"] for c in contexts) or "none"
                        raise CliError(
                            f"no context {target.context!r} in kubeconfig {files} (it has: {names})"
                        )
                config.load_kube_config(
                    config_file=files,
                    context=target.context,
                    client_configuration=configuration,
                )
            except (ConfigException, OSError, ValueError, TypeError, KeyError) as bad:
                raise CliError(f"cannot load kubeconfig {files}: {_one_line(bad)}") from bad
            context_name = (chosen or {}).get("name", "(none)")
            namespace = (
                target.namespace
                or ((chosen or {}).get("context") or {}).get("namespace")
                or "default"
            )
            where = f"kubeconfig {files}, context {context_name}"
        # Fail fast and say so: a CLI retrying a refused connection three times only waits.
        configuration.retries = False
        return cls(client.ApiClient(configuration), namespace, where)

    def close(self) -> None:
        self.api.close()

    def call(self, method: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """One API call; unreachable clusters and refusals become one readable line."""
        kwargs.setdefault("_request_timeout", REQUEST_TIMEOUT_SECONDS)
        try:
            return method(*args, **kwargs)
        except urllib3.exceptions.HTTPError as bad:
            raise CliError(
                f"cannot reach the cluster at {self.server} ({self.where}): {_reason(bad)}"
            ) from bad
        except ApiException as refused:
            if refused.status in (401, 403):
                raise CliError(
                    f"the cluster at {self.server} refused: {_api_message(refused)} ({self.where})"
                ) from refused
            raise

    def ensure_installed(self) -> None:
        """Hanshu's API group is served; else say how to install it."""
        try:
            self.call(self.custom.get_api_resources, GROUP, VERSION)
        except ApiException as missing:
            if missing.status == 404:
                raise CliError(INSTALL_HINT) from missing
            raise CliError(f"the cluster answered {_api_message(missing)}") from missing

    # Hanshu's resources.

    def functions(self, namespace: str | None = None) -> list[dict[str, Any]]:
        return self._list(FUNCTION_PLURAL, namespace)

    def triggers(self, namespace: str | None = None) -> list[dict[str, Any]]:
        return self._list(TRIGGER_PLURAL, namespace)

    def function_versions(self, namespace: str | None = None) -> list[dict[str, Any]]:
        return self._list(FUNCTION_VERSION_PLURAL, namespace)

    def create_function_version(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """Publish: create the FunctionVersion (a name taken meanwhile is refused)."""
        name = manifest["metadata"]["name"]
        try:
            created: dict[str, Any] = self.call(
                self.custom.create_namespaced_custom_object,
                GROUP,
                VERSION,
                manifest["metadata"].get("namespace") or self.namespace,
                FUNCTION_VERSION_PLURAL,
                manifest,
            )
        except ApiException as bad:
            if bad.status == 409:
                raise CliError(
                    f"{FUNCTION_VERSION_KIND} {name} was published meanwhile (by another "
                    "hanshu publish?); run hanshu publish again"
                ) from bad
            if bad.status == 404:
                raise CliError(INSTALL_HINT + " (with the FunctionVersion CRD)") from bad
            raise CliError(f"publishing {name}: {_api_message(bad)}") from bad
        return created

    def patch_aliases(
        self, function: dict[str, Any], aliases: list[dict[str, Any]]
    ) -> dict[str, Any]:
        """Write the Function's whole ``spec.aliases`` list, only if the Function is still
        the one read (its resourceVersion): a change meanwhile is refused, not lost."""
        meta = function["metadata"]
        body = {
            "metadata": {"resourceVersion": meta.get("resourceVersion")},
            "spec": {"aliases": aliases},
        }
        try:
            patched: dict[str, Any] = self.call(
                self.custom.patch_namespaced_custom_object,
                GROUP,
                VERSION,
                meta.get("namespace") or self.namespace,
                FUNCTION_PLURAL,
                meta["name"],
                body,
                _content_type="application/merge-patch+json",
            )
        except ApiException as bad:
            if bad.status == 409:
                raise CliError(
                    f"Function {meta['name']} changed while this ran; run the command again"
                ) from bad
            raise CliError(f"changing the aliases of {meta['name']}: {_api_message(bad)}") from bad
        return patched

    def _list(self, plural: str, namespace: str | None) -> list[dict[str, Any]]:
        try:
            found = self.call(
                self.custom.list_namespaced_custom_object,
                GROUP,
                VERSION,
                namespace or self.namespace,
                plural,
            )
        except ApiException as bad:
            if bad.status == 404:
                raise CliError(INSTALL_HINT) from bad
            raise CliError(f"listing {plural}: {_api_message(bad)}") from bad
        items: list[dict[str, Any]] = found.get("items") or []
        return sorted(items, key=lambda o: str(o["metadata"]["name"]))

    def function(self, name: str, namespace: str | None = None) -> dict[str, Any]:
        namespace = namespace or self.namespace
        try:
            found: dict[str, Any] = self.call(
                self.custom.get_namespaced_custom_object,
                GROUP,
                VERSION,
                namespace,
                FUNCTION_PLURAL,
                name,
            )
        except ApiException as bad:
            if bad.status == 404:
                self.ensure_installed()
                raise CliError(
                    f"no Function {name!r} in namespace {namespace} (hanshu get lists them)"
                ) from bad
            raise CliError(f"reading Function {name}: {_api_message(bad)}") from bad
        return found

    def apply(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply as ``kubectl apply --server-side --force-conflicts``: the
        folder is what the user wants, so its fields win over an earlier writer's."""
        meta = manifest["metadata"]
        namespace, name = meta.get("namespace") or self.namespace, meta["name"]
        api_version, kind = manifest["apiVersion"], manifest["kind"]
        try:
            if api_version == f"{GROUP}/{VERSION}":
                plural = {
                    "Function": FUNCTION_PLURAL,
                    FUNCTION_VERSION_KIND: FUNCTION_VERSION_PLURAL,
                }.get(kind, TRIGGER_PLURAL)
                applied: dict[str, Any] = self.call(
                    self.custom.patch_namespaced_custom_object,
                    GROUP,
                    VERSION,
                    namespace,
                    plural,
                    name,
                    manifest,
                    field_manager=FIELD_MANAGER,
                    force=True,
                    _content_type=APPLY_CONTENT_TYPE,
                )
                return applied
            patch = {
                "ConfigMap": self.core.patch_namespaced_config_map,
                "Secret": self.core.patch_namespaced_secret,
            }[kind]
            self.call(
                patch,
                name,
                namespace,
                manifest,
                field_manager=FIELD_MANAGER,
                force=True,
                _content_type=APPLY_CONTENT_TYPE,
            )
            return manifest
        except ApiException as bad:
            if bad.status == 404 and api_version.startswith(GROUP):
                raise CliError(INSTALL_HINT) from bad
            raise CliError(f"applying {kind} {name}: {_api_message(bad)}") from bad

    def warm_pool(self, namespace: str | None = None) -> tuple[int, int] | None:
        """The namespace's warm pool as (pods available, size), or None when it has none
        (or we may not read it: the pool is the platform's, not the user's)."""
        try:
            found = self.call(
                self.apps.read_namespaced_deployment, POOL_DEPLOYMENT, namespace or self.namespace
            )
        except ApiException as bad:
            if bad.status in (403, 404):
                return None
            raise CliError(f"reading the warm pool: {_api_message(bad)}") from bad
        status, spec = found.status, found.spec
        return int((status and status.ready_replicas) or 0), int((spec and spec.replicas) or 0)

    # What the Function's pods and Events say.

    def pods(self, function: str, namespace: str | None = None) -> list[Any]:
        found = self.call(
            self.core.list_namespaced_pod,
            namespace or self.namespace,
            label_selector=f"{LABEL_FUNCTION}={function}",
        )
        return sorted(found.items, key=lambda p: str(p.metadata.name))

    def pod_log(
        self,
        pod: str,
        container: str,
        namespace: str | None = None,
        since_seconds: int | None = None,
    ) -> str:
        kwargs: dict[str, Any] = {"container": container, "timestamps": True}
        if since_seconds is not None:
            kwargs["since_seconds"] = since_seconds
        try:
            reply = self.call(
                self.core.read_namespaced_pod_log,
                pod,
                namespace or self.namespace,
                _preload_content=False,
                **kwargs,
            )
        except ApiException as bad:
            if bad.status in (400, 404):
                return ""  # not started yet, or gone between the list and the read
            raise CliError(f"reading the log of pod {pod}: {_api_message(bad)}") from bad
        return str(reply.data.decode("utf-8", "replace"))

    def follow_log(
        self, pod: str, container: str, namespace: str | None, since_seconds: int | None
    ) -> Iterator[str]:
        """A pod's log lines as they are written (``kubectl logs -f``)."""
        kwargs: dict[str, Any] = {"container": container, "timestamps": True, "follow": True}
        if since_seconds is not None:
            kwargs["since_seconds"] = since_seconds
        reply = self.call(
            self.core.read_namespaced_pod_log,
            pod,
            namespace or self.namespace,
            _preload_content=False,
            _request_timeout=None,
            **kwargs,
        )
        pending = b""
        for chunk in reply.stream(4096):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                yield line.decode("utf-8", "replace")

    def events(self, namespace: str | None = None) -> list[Any]:
        found = self.call(self.core.list_namespaced_event, namespace or self.namespace)
        return list(found.items)

    def gateway_metrics(self) -> list[tuple[str, str]]:
        """(pod, metrics text) of every gateway pod, through the API server's pod proxy."""
        pods = self.call(self.core.list_pod_for_all_namespaces, label_selector=GATEWAY_SELECTOR)
        texts = []
        for pod in pods.items:
            if (pod.status.phase or "") != "Running":
                continue
            reply = self.call(
                self.core.connect_get_namespaced_pod_proxy_with_path,
                f"{pod.metadata.name}:{GATEWAY_INTERNAL_PORT}",
                pod.metadata.namespace,
                "metrics",
                _preload_content=False,
            )
            texts.append((str(pod.metadata.name), str(reply.data.decode("utf-8", "replace"))))
        return texts


def _service_account_namespace() -> str:
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or "default"
    except OSError:
        return "default"


def _one_line(error: object) -> str:
    return " ".join(str(error).split())


def _reason(error: urllib3.exceptions.HTTPError) -> str:
    reason = getattr(error, "reason", None) or error
    text = _one_line(reason)
    # urllib3 prefixes the connection object's repr: keep what a person reads.
    for marker in (">: ", "): "):
        if marker in text and text.startswith(("<", "HTTP")):
            return text.split(marker, 1)[1]
    return text


def _api_message(error: ApiException) -> str:
    import json

    try:
        body = json.loads(error.body or "{}")
    except ValueError:
        body = {}
    message = body.get("message") if isinstance(body, dict) else None
    return (
        f"{error.status} {error.reason}: {message}" if message else f"{error.status} {error.reason}"
    )
