"""Helpers the benchmarks share: free ports, waiting for a server, running a peer server,
running the load tool."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from hanshu_cli.local_platform import free_port

__all__ = ["free_port"]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_times() -> tuple[float, float]:
    """(all CPU time, idle CPU time) of the machine so far, over every core (Linux /proc)."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    return float(sum(fields[:8])), float(fields[3] + fields[4])


def wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as reply:
                if reply.status < 500:
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer within {timeout}s")


@dataclass(frozen=True)
class RunningPeer:
    url: str
    pid: int


@contextmanager
def running_peer(command: list[str], port: int) -> Iterator[RunningPeer]:
    """A server process to compare with, answering on ``port`` of loopback until the end."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_http(url)
        yield RunningPeer(url=url, pid=process.pid)
    finally:
        process.terminate()
        process.wait(timeout=10)


def pinned(cpu: int, command: list[str]) -> list[str]:
    """Pin to one core when taskset exists, so server and load tool do not fight for one."""
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        return ["taskset", "-c", str(cpu), *command]
    return command


@dataclass
class LoadResult:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    errors: int


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def run_wrk(url: str, *, connections: int, seconds: int, script: str | None = None) -> LoadResult:
    """Saturating load with wrk (one thread, pinned to core 0); ``script`` is a wrk Lua
    script (a method, headers, a body)."""
    extra = ["-s", script] if script else []
    out = subprocess.run(
        pinned(0, ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", *extra, url]),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", out)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    errors = 0
    if match := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        errors += int(match.group(1))
    if match := re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    ):
        errors += sum(int(g) for g in match.groups())
    if p50 is None or p99 is None:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    return LoadResult(rps, _ms(*p50.groups()), _ms(*p99.groups()), errors)


def run_hey(url: str, *, rate: int, seconds: int, connections: int = 50) -> LoadResult:
    """Fixed-rate load with hey: ``-q`` is per worker, so rate / connections each."""
    per_worker = max(1, rate // connections)
    out = subprocess.run(
        pinned(0, ["hey", "-z", f"{seconds}s", "-c", str(connections), "-q", str(per_worker), url]),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = float(re.search(r"50%% in ([\d.]+) secs".replace("%%", "%"), out).group(1)) * 1000  # type: ignore[union-attr]
    p99 = float(re.search(r"99% in ([\d.]+) secs", out).group(1)) * 1000  # type: ignore[union-attr]
    codes = re.findall(r"\[(\d{3})\]\s+(\d+) responses", out)
    errors = sum(int(n) for code, n in codes if not code.startswith("2"))
    if match := re.search(r"Error distribution:(.*)", out, re.S):
        errors += sum(int(n) for n in re.findall(r"\[(\d+)\]", match.group(1)))
    return LoadResult(rps, p50, p99, errors)


def gateway_env(
    kubeconfig: str | Path, namespace: str, port: int, internal: int, **extra: str
) -> dict[str, str]:
    """The environment of a cluster gateway process (``python -m hanshu_gateway``) that
    watches one namespace through ``kubeconfig`` and serves on loopback ports."""
    return {
        **os.environ,
        "KUBECONFIG": str(kubeconfig),
        "HANSHU_WATCH_NAMESPACES": namespace,
        "HANSHU_GATEWAY_HOST": "127.0.0.1",
        "HANSHU_GATEWAY_PORT": str(port),
        "HANSHU_GATEWAY_INTERNAL_PORT": str(internal),
        **extra,
    }


def dispatcher_env(nats_url: str, internal_port: int, **extra: str) -> dict[str, str]:
    """A dispatcher process's environment against a dev platform on loopback."""
    return {
        **os.environ,
        "HANSHU_NATS_URL": nats_url,
        "HANSHU_GATEWAY_INTERNAL_URL": f"http://127.0.0.1:{internal_port}",
        "HANSHU_DISPATCHER_PORT": str(free_port()),
        "HANSHU_DISPATCHER_HOST": "127.0.0.1",
        # What a killed dispatcher held comes back after this long without heartbeats.
        "HANSHU_ACK_WAIT_SECONDS": "5",
        **extra,
    }


def stop_all(processes: Iterable[subprocess.Popen[bytes] | None], timeout: float = 20) -> None:
    """SIGTERM each process still running, then wait; what does not stop in time is killed."""
    running = [p for p in processes if p is not None]
    for process in running:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in running:
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
