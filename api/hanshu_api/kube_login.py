"""Who we are to the Kubernetes API, and where it is: in a pod from the service account,
elsewhere from a kubeconfig read by the official client's loader.

The loader is the one kubectl's users expect: exec plugins (EKS's ``aws eks get-token``,
GKE's ``gke-gcloud-auth-plugin``), auth providers (OIDC), tokenFile, merged KUBECONFIG
paths. We take what it resolved (server, CA, client certificate, token) into our own small
settings, as kopf's ``login_via_client`` does, and our aiohttp client talks to the API.

In a pod the official client is never imported: the images do not install it.
"""

from __future__ import annotations

import os
import ssl
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
INSTALL_HINT = "pip install 'hanshu[kubeconfig]' (or: pip install kubernetes)"
# The API key names the official Configuration keeps a kubeconfig's token under: the
# loader writes "BearerToken" since client 36 and "authorization" before it.
_TOKEN_KEYS = ("BearerToken", "authorization")
# The loader's memory of the files it wrote is one per process: two logins at once (kopf's
# and our client's, both after the same 401) would hand each other's files out.
_LOADING = threading.Lock()


class KubeLoginError(RuntimeError):
    """The credentials cannot be loaded; the message says what to set or install."""


@dataclass(frozen=True, slots=True)
class KubeConfig:
    """Where the API is and who we are. Credentials given inline (a kubeconfig's '*-data'
    fields, an exec plugin's certificate) stay in memory as PEM bytes: never in files that
    outlive loading them."""

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
    # How to log in again when the API answers 401 (an exec plugin's token expired): None
    # for settings given by hand, which a second look cannot change.
    reload: Callable[[], KubeConfig] | None = field(default=None, repr=False, compare=False)


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


def tls_settings(config: KubeConfig) -> tuple[object, ...]:
    """What a connection's TLS depends on: a new login that changes it needs new
    connections, one that changes only the token does not."""
    return (
        config.server,
        config.insecure,
        config.ca_file,
        config.ca_data,
        config.cert_file,
        config.cert_data,
        config.key_file,
        config.key_data,
    )


# -- in a pod -------------------------------------------------------------------------------


def in_cluster_config(host: str, port: str, account_dir: Path = SERVICE_ACCOUNT_DIR) -> KubeConfig:
    """The pod's service account. The token is a file the kubelet rewrites as it rotates
    the token (hourly): the client reads the file again, never a copy taken here."""
    namespace_file = account_dir / "namespace"
    return KubeConfig(
        server=f"https://{host}:{port}" if ":" not in host else f"https://[{host}]:{port}",
        token_file=str(account_dir / "token"),
        ca_file=str(account_dir / "ca.crt"),
        namespace=namespace_file.read_text().strip() if namespace_file.exists() else "default",
    )


# -- from a kubeconfig, through the official client -----------------------------------------


def official_client() -> tuple[ModuleType, ModuleType]:
    """kubernetes.config and kubernetes.client, imported only when a kubeconfig is read."""
    try:
        import kubernetes.client
        import kubernetes.config
    except ImportError:
        raise KubeLoginError(
            f"reading a kubeconfig needs the official Kubernetes client: {INSTALL_HINT}"
        ) from None
    return kubernetes.config, kubernetes.client


def split_authorization(header: str | None) -> tuple[str | None, str | None]:
    """An Authorization value into (scheme, credentials), as RFC 7235 writes it: the
    loader keeps a kubeconfig token as "Bearer <token>", a bare token has no scheme."""
    parts = header.split(" ", 1) if header else []
    if not parts:
        return None, None
    if len(parts) == 1:
        return None, parts[0]
    return parts[0], parts[1]


def bearer_token(configuration: Any) -> str | None:
    """The token the loader resolved, an auth provider's or exec plugin's included: its
    hook runs when the key is asked for, so the key is asked for, never read directly."""
    for identifier in _TOKEN_KEYS:
        scheme, token = split_authorization(configuration.get_api_key_with_prefix(identifier))
        if token is None:
            continue
        if scheme is not None and scheme.lower() != "bearer":
            raise KubeLoginError(
                f"the kubeconfig's user authenticates with {scheme}, which Kubernetes "
                "removed in 1.19: use a token, a client certificate or an exec plugin"
            )
        # A tokenFile is read whole by the loader: its newline would break the header.
        return token.strip()
    return None


def _file_or_data(path: str | None, scratch: str) -> tuple[str | None, bytes | None]:
    """A path the loader wrote under ``scratch`` (a kubeconfig's '*-data', an exec
    plugin's certificate) becomes bytes in memory; the user's own file stays a path."""
    if path is None:
        return None, None
    if Path(path).resolve().is_relative_to(Path(scratch).resolve()):
        return None, Path(path).read_bytes()
    return path, None


def _forget_files_in(config_module: ModuleType, scratch: str) -> None:
    """The loader remembers each file it wrote (keyed by the content, a private key
    among them) and hands the same path out again: forget those about to be removed, so
    the next login writes them afresh instead of naming a file that is gone."""
    kube_config = getattr(config_module, "kube_config", None)
    written: dict[str, str] = getattr(kube_config, "_temp_files", {})
    for content, name in list(written.items()):
        if Path(name).resolve().is_relative_to(Path(scratch).resolve()):
            del written[content]


def _context_namespace(config_module: ModuleType, path: str, context: str | None) -> str:
    contexts, current = config_module.list_kube_config_contexts(config_file=path)
    chosen = next((c for c in contexts if c.get("name") == context), None) if context else current
    return str(((chosen or {}).get("context") or {}).get("namespace") or "default")


def config_from_kubeconfig(path: str, context: str | None = None) -> KubeConfig:
    """The kubeconfig at ``path`` (KUBECONFIG's form: several paths joined by os.pathsep
    are merged as kubectl merges them), its current context unless ``context`` is named.
    Runs the user's exec plugin or auth provider now, and again at each reload."""
    config_module, client_module = official_client()
    configuration = client_module.Configuration()
    with _LOADING, tempfile.TemporaryDirectory(prefix="hanshu-kubeconfig-") as scratch:
        try:
            config_module.load_kube_config(
                config_file=path,
                context=context,
                client_configuration=configuration,
                persist_config=False,  # a refreshed token is ours, not the user's file's
                temp_file_path=scratch,
            )
            namespace = _context_namespace(config_module, path, context)
            token = bearer_token(configuration)
            ca_file, ca_data = _file_or_data(configuration.ssl_ca_cert, scratch)
            cert_file, cert_data = _file_or_data(configuration.cert_file, scratch)
            key_file, key_data = _file_or_data(configuration.key_file, scratch)
        except config_module.ConfigException as error:
            raise KubeLoginError(f"kubeconfig {path}: {error}") from None
        finally:
            _forget_files_in(config_module, scratch)
    return KubeConfig(
        server=str(configuration.host).rstrip("/"),
        token=token,
        ca_file=ca_file,
        cert_file=cert_file,
        key_file=key_file,
        insecure=not configuration.verify_ssl,
        namespace=namespace,
        ca_data=ca_data,
        cert_data=cert_data,
        key_data=key_data,
        reload=partial(config_from_kubeconfig, path, context),
    )


def load_config(env: Mapping[str, str] = os.environ) -> KubeConfig:
    """KUBECONFIG when set; else the pod's service account; else ~/.kube/config."""
    if env.get("KUBECONFIG"):
        return config_from_kubeconfig(env["KUBECONFIG"])
    host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT", "443")
    if host and (SERVICE_ACCOUNT_DIR / "token").exists():
        return in_cluster_config(host, port, SERVICE_ACCOUNT_DIR)
    home_config = Path.home() / ".kube" / "config"
    if home_config.exists():
        return config_from_kubeconfig(str(home_config))
    raise KubeLoginError(
        "no Kubernetes credentials: set KUBECONFIG, run in a pod with a service account, "
        "or create ~/.kube/config"
    )
