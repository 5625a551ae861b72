"""nginx as a reverse proxy in front of a replica: the peer the gateway's warm path is
compared with in the same run.

nginx is what a proxy written in C, with keep-alive connections to its upstream, keeps of
the direct figures on this machine: the part of the gateway's gap that is the extra hop
itself, as opposed to the gateway's own CPU per request. One worker process, as the
gateway is one process; access log off, as the gateway logs no line per request.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from common import RunningPeer, free_port, running_peer

CONFIG = """\
worker_processes 1;
master_process off;
daemon off;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    upstream replica {{ server {upstream}; keepalive 128; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://replica;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""


def nginx_missing() -> str | None:
    """Why the peer cannot run here, or None when it can."""
    if shutil.which("nginx") is None:
        return "nginx is not installed (apt-get install nginx-light)"
    return None


@contextmanager
def nginx_in_front_of(upstream: str) -> Iterator[RunningPeer]:
    """nginx on a free loopback port, proxying to ``upstream`` ("host:port")."""
    folder = Path(tempfile.mkdtemp(prefix="hanshu-bench-nginx-"))
    port = free_port()
    (folder / "nginx.conf").write_text(CONFIG.format(folder=folder, upstream=upstream, port=port))
    try:
        with running_peer(
            ["nginx", "-p", str(folder), "-c", str(folder / "nginx.conf")], port
        ) as peer:
            yield peer
    finally:
        shutil.rmtree(folder, ignore_errors=True)
