"""``python -m hanshu_autoscaler`` as its own process against kmock (tests and the
takeover benchmark): one replica of the chart's Deployment, named and addressed as a pod
would be, with short windows so that a test sees a whole 0 -> 1 -> 0."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

LEASE_NAME = "hanshu-autoscaler"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class AutoscalerProcess:
    pod: str
    kubeconfig: Path
    namespace: str
    port: int = field(default_factory=free_port)
    env: dict[str, str] = field(default_factory=dict)
    quiet: bool = False  # its log to /dev/null (benchmarks), not the test output
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def identity(self) -> str:
        return f"{self.pod}@{self.url}"

    def start(self) -> AutoscalerProcess:
        env = {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "HANSHU_AUTOSCALER_PORT": str(self.port),
            "HANSHU_AUTOSCALER_METRICS_PORT": "0",
            "HANSHU_WATCH_NAMESPACES": self.namespace,
            "HANSHU_LEASE_NAMESPACE": self.namespace,
            "HANSHU_POD_NAME": self.pod,
            "HANSHU_POD_IP": "127.0.0.1",
            "HANSHU_STABLE_WINDOW_SECONDS": "2",
            "HANSHU_PANIC_WINDOW_SECONDS": "1",
            **self.env,
        }
        output = subprocess.DEVNULL if self.quiet else None
        self.process = subprocess.Popen(
            [sys.executable, "-m", "hanshu_autoscaler"], env=env, stdout=output, stderr=output
        )
        return self

    def kill(self) -> None:
        """SIGKILL: no goodbye, the Lease stays as it was (a node lost, an OOM kill)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
