"""The function runtime as a real process on loopback ports (``python -m hanshu_runtime``),
started the way the operator's pod spec starts it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hanshu_cli.local_platform import free_port


@dataclass
class RuntimeProcess:
    process: subprocess.Popen[str]
    port: int
    admin_port: int
    termination_log: Path
    output: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def stop(self, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def logs(self) -> str:
        """Everything the process wrote to stdout (JSON lines), once it has exited."""
        assert self.process.poll() is not None, "read logs only after the process exited"
        assert self.process.stdout is not None
        return self.process.stdout.read()


def start_runtime(code_dir: Path, handler: str, tmp_path: Path, **env: str) -> RuntimeProcess:
    port, admin_port = free_port(), free_port()
    termination_log = tmp_path / f"termination-log-{port}"
    full_env = {
        **os.environ,
        "HANSHU_HANDLER": handler,
        "HANSHU_CODE_DIR": str(code_dir),
        "HANSHU_HOST": "127.0.0.1",
        "HANSHU_PORT": str(port),
        "HANSHU_ADMIN_PORT": str(admin_port),
        "HANSHU_TERMINATION_LOG": str(termination_log),
        "HANSHU_FUNCTION_NAME": "test-fn",
        **env,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "hanshu_runtime"],
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return RuntimeProcess(process, port, admin_port, termination_log)


def wait_ready(runtime: RuntimeProcess, timeout: float = 30) -> None:
    """Poll /readyz until 200; fail with the process's stderr if it exits first."""
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if runtime.process.poll() is not None:
            assert runtime.process.stderr is not None
            pytest.fail(f"runtime exited early: {runtime.process.stderr.read()}")
        try:
            with urllib.request.urlopen(f"{runtime.admin_url}/readyz", timeout=1) as reply:
                if reply.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.02)
    pytest.fail(f"runtime not ready within {timeout}s")
