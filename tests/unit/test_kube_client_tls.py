"""Client credentials inline in a kubeconfig ('*-data'): loaded without leaving files behind,
and still good for a mutual-TLS connection (a real TLS server on loopback)."""

from __future__ import annotations

import base64
import ssl
import subprocess
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from hanshu_api.kube import KubeClient, config_from_kubeconfig

from tests.conftest import free_port

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
    return directory


@pytest.fixture
async def mtls_server(certs: Path) -> AsyncIterator[str]:
    """Answers with the common name of the client certificate it required."""

    async def whoami(request: web.Request) -> web.Response:
        peer = request.transport.get_extra_info("peercert") if request.transport else None
        subject = dict(item[0] for item in (peer or {}).get("subject", ()))
        return web.json_response({"client": subject.get("commonName")})

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=certs / "ca.crt")
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_cert_chain(certs / "server.crt", certs / "server.key")
    app = web.Application()
    app.router.add_get("/api/v1/namespaces/default/configmaps/whoami", whoami)
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
        reply = await kube.get("/api/v1/namespaces/default/configmaps/whoami")
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
            await kube.get("/api/v1/namespaces/default/configmaps/whoami")
    finally:
        await kube.close()
