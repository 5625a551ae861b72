"""Client credentials in a kubeconfig: inline ('*-data') or an exec plugin's certificate,
loaded without leaving files behind, or files next to the kubeconfig; each good for a
mutual-TLS connection (a real TLS server on loopback)."""

from __future__ import annotations

import base64
import json
import ssl
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import yaml
from aiohttp import web
from hanshu_api.kube import KubeClient, config_from_kubeconfig

from tests.support.servers import free_port

WHOAMI = "/api/v1/namespaces/default/configmaps/whoami"
ADMITTED = "/api/v1/namespaces/default/configmaps/admitted"
EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


def _openssl(directory: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)


def _signed(directory: Path, name: str, subject: str, extensions: str, serial: int) -> None:
    _openssl(
        directory, "req", *EC, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject
    )
    (directory / f"{name}.ext").write_text(
        "basicConstraints=CA:FALSE\nsubjectKeyIdentifier=hash\n"
        f"authorityKeyIdentifier=keyid\n{extensions}\n"
    )
    _openssl(
        directory,
        *("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key"),
        *("-set_serial", str(serial), "-days", "1", "-out", f"{name}.crt"),
        *("-extfile", f"{name}.ext"),
    )


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, all from it."""
    directory = tmp_path_factory.mktemp("pki")
    _openssl(
        directory,
        *("req", "-x509", *EC, "-keyout", "ca.key", "-out", "ca.crt", "-days", "1"),
        *("-subj", "/CN=hanshu-test-ca", "-addext", "basicConstraints=critical,CA:TRUE"),
        *("-addext", "keyUsage=critical,keyCertSign,cRLSign"),
    )
    _signed(
        directory,
        "server",
        "/CN=127.0.0.1",
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth",
        2,
    )
    _signed(directory, "client", "/CN=hanshu-client", "extendedKeyUsage=clientAuth", 3)
    _signed(directory, "old-client", "/CN=old-client", "extendedKeyUsage=clientAuth", 4)
    return directory


@pytest.fixture
async def mtls_server(certs: Path) -> AsyncIterator[str]:
    """Answers with the common name of the client certificate it required; refuses all
    but hanshu-client with 401 on one path (a certificate the API server stopped taking)."""

    def client_name(request: web.Request) -> str | None:
        peer = request.transport.get_extra_info("peercert") if request.transport else None
        return dict(item[0] for item in (peer or {}).get("subject", ())).get("commonName")

    async def whoami(request: web.Request) -> web.Response:
        return web.json_response({"client": client_name(request)})

    async def admitted(request: web.Request) -> web.Response:
        if client_name(request) != "hanshu-client":
            return web.json_response({"reason": "Unauthorized"}, status=401)
        return web.json_response({"client": client_name(request)})

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=certs / "ca.crt")
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_cert_chain(certs / "server.crt", certs / "server.key")
    app = web.Application()
    app.router.add_get(WHOAMI, whoami)
    app.router.add_get(ADMITTED, admitted)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=context).start()
    try:
        yield f"https://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def _inline_kubeconfig(path: Path, server: str, certs: Path, client: bool = True) -> Path:
    def data(name: str) -> str:
        return base64.b64encode((certs / name).read_bytes()).decode()

    user = (
        f"{{client-certificate-data: {data('client.crt')}, client-key-data: {data('client.key')}}}"
        if client
        else "{}"
    )
    path.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        f"clusters: [{{name: c, cluster: {{server: '{server}', "
        f"certificate-authority-data: {data('ca.crt')}}}}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u}}]\n"
        f"users: [{{name: u, user: {user}}}]\n"
    )
    return path


async def test_inline_credentials_authenticate_and_leave_no_file(
    certs: Path, mtls_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # tempfile caches its directory
    config = config_from_kubeconfig(
        str(_inline_kubeconfig(tmp_path / "kubeconfig", mtls_server, certs))
    )
    assert config.key_data is not None
    assert "PRIVATE KEY" not in repr(config)
    kube = KubeClient(config)
    try:
        reply = await kube.get(WHOAMI)
    finally:
        await kube.close()
    assert reply == {"client": "hanshu-client"}  # the CA verified the server, the key us
    assert list(scratch.iterdir()) == [], "a credential was left in a temporary file"


async def test_without_the_client_certificate_the_server_refuses(
    certs: Path, mtls_server: str, tmp_path: Path
):
    # The control for the test above: the certificate is what got us in.
    path = _inline_kubeconfig(tmp_path / "kubeconfig", mtls_server, certs, client=False)
    kube = KubeClient(config_from_kubeconfig(str(path)))
    try:
        with pytest.raises(aiohttp.ClientError):
            await kube.get(WHOAMI)
    finally:
        await kube.close()


def _kubeconfig(
    path: Path, server: str, cluster: dict[str, object], user: dict[str, object]
) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "c",
                "clusters": [{"name": "c", "cluster": {"server": server, **cluster}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
                "users": [{"name": "u", "user": user}],
            }
        )
    )
    return path


async def test_certificate_files_next_to_the_kubeconfig_authenticate(certs: Path, mtls_server: str):
    # Relative paths are the kubeconfig's folder's, as kubectl reads them.
    path = _kubeconfig(
        certs / "kubeconfig",
        mtls_server,
        {"certificate-authority": "ca.crt"},
        {"client-certificate": "client.crt", "client-key": "client.key"},
    )
    config = config_from_kubeconfig(str(path))
    assert config.cert_file == str(certs / "client.crt")  # the user's file, not a copy
    assert config.cert_data is None
    kube = KubeClient(config)
    try:
        assert await kube.get(WHOAMI) == {"client": "hanshu-client"}
    finally:
        await kube.close()


def _certificate_plugin(directory: Path, certs: Path, *clients: str) -> dict[str, object]:
    """An exec plugin answering with a client certificate (no token): the next of
    ``clients`` at each run, the last one from then on."""
    pairs = [
        {
            "clientCertificateData": (certs / f"{name}.crt").read_text(),
            "clientKeyData": (certs / f"{name}.key").read_text(),
        }
        for name in clients
    ]
    script = directory / "get-certificate"
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, pathlib\n"
        f"runs = pathlib.Path({str(directory / 'runs')!r})\n"
        "done = int(runs.read_text()) if runs.exists() else 0\n"
        "runs.write_text(str(done + 1))\n"
        f"pairs = json.loads({json.dumps(pairs)!r})\n"
        "print(json.dumps({'apiVersion': 'client.authentication.k8s.io/v1', "
        "'kind': 'ExecCredential', 'status': pairs[min(done, len(pairs) - 1)]}))\n"
    )
    script.chmod(0o755)
    exec_config = {"apiVersion": "client.authentication.k8s.io/v1", "command": str(script)}
    return {"exec": {**exec_config, "interactiveMode": "Never"}}


async def test_an_exec_plugins_certificate_authenticates_and_leaves_no_file(
    certs: Path, mtls_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    ca = base64.b64encode((certs / "ca.crt").read_bytes()).decode()
    user = _certificate_plugin(tmp_path, certs, "client")
    path = _kubeconfig(
        tmp_path / "kubeconfig", mtls_server, {"certificate-authority-data": ca}, user
    )
    kube = KubeClient(config_from_kubeconfig(str(path)))
    try:
        assert await kube.get(WHOAMI) == {"client": "hanshu-client"}
    finally:
        await kube.close()
    assert list(scratch.iterdir()) == [], "a credential was left in a temporary file"


async def test_a_refused_certificate_is_replaced_by_the_plugins_next_one(
    certs: Path, mtls_server: str, tmp_path: Path
):
    # A new client certificate needs new connections: the old ones present the old one.
    ca = base64.b64encode((certs / "ca.crt").read_bytes()).decode()
    user = _certificate_plugin(tmp_path, certs, "old-client", "client")
    path = _kubeconfig(
        tmp_path / "kubeconfig", mtls_server, {"certificate-authority-data": ca}, user
    )
    kube = KubeClient(config_from_kubeconfig(str(path)))
    try:
        assert await kube.get(WHOAMI) == {"client": "old-client"}
        assert await kube.get(ADMITTED) == {"client": "hanshu-client"}
        assert await kube.get(WHOAMI) == {"client": "hanshu-client"}
    finally:
        await kube.close()
    assert (tmp_path / "runs").read_text() == "2"
