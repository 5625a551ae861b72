"""The operator with 5,000 Functions and 5,000 HTTP Triggers stays under its memory limit.

The shape that OOMKilled it (issue #23): everything already exists and the operator
(re)starts, lists it all at once and reconciles every object. The operator runs as its
own process, with its image's packages only, against kmock; the test waits until it has
made every child and status it had to (in kmock's store: kmock runs no controller and
collects no garbage, so what is there, the operator made), then checks its peak RSS
against the chart's limit and that its liveness endpoint kept answering within the
probe's timeout.

Marked ``scale`` and left out of ``make test`` (``make scale-test`` runs it): through
kmock, one process serving about a hundred requests a second on the project's shared
2-core machine, 60,000 requests take several minutes, more than the suite's budget.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import kmock
import pytest
from hanshu_api import API_VERSION, FUNCTION_PLURAL, TRIGGER_PLURAL

from devtools.kube_emulator import ForgetfulEmulator, declare_resources, write_kubeconfig
from devtools.operator_process import AS_IN_THE_IMAGE, chart_memory_limit_mib, peak_rss_mib
from tests.support.servers import free_port

pytestmark = [pytest.mark.scale, pytest.mark.timeout(3600)]

# Fewer for a quick look at the shape (HANSHU_SCALE_COUNT=200); the claim is for 5,000.
COUNT = int(os.environ.get("HANSHU_SCALE_COUNT", "5000"))
NAMESPACE = "scale"
VALUES = Path(__file__).resolve().parents[3] / "charts" / "hanshu" / "values.yaml"
PROBE_TIMEOUT_SECONDS = 5.0  # the chart's livenessProbe.timeoutSeconds
DEADLINE_SECONDS = 3000


def function(index: int) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Function",
        "metadata": {
            "name": f"fn-{index}",
            "namespace": NAMESPACE,
            "uid": f"fn-uid-{index}",
            "generation": 1,
            "resourceVersion": "1",
            "creationTimestamp": "2026-12-01T00:00:00Z",
        },
        "spec": {
            "handler": "index.handler",
            "code": {"inline": {"index.py": f"def handler(e, c):\n    return {index}\n"}},
        },
    }


def trigger(index: int) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Trigger",
        "metadata": {
            "name": f"trg-{index}",
            "namespace": NAMESPACE,
            "uid": f"trg-uid-{index}",
            "generation": 1,
            "resourceVersion": "1",
            "creationTimestamp": "2026-12-01T00:00:00Z",
        },
        "spec": {"functionRef": {"name": f"fn-{index}"}, "http": {"path": f"/fn-{index}"}},
    }


class LivenessProber:
    """Asks the liveness endpoint every 0.5 s from a thread, as the kubelet would; keeps
    the slowest answer (a refused or timed-out probe counts as its full wait)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.slowest = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            started = time.monotonic()
            try:
                with urllib.request.urlopen(self.url, timeout=30) as reply:
                    reply.read()
            except OSError:
                pass
            self.slowest = max(self.slowest, time.monotonic() - started)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.slowest


@pytest.fixture
def operator_env() -> dict[str, str]:
    return {
        **os.environ,
        "HANSHU_WATCH_NAMESPACES": NAMESPACE,
        "HANSHU_OPERATOR_LIVENESS_PORT": str(free_port()),
        "HANSHU_OPERATOR_METRICS_PORT": str(free_port()),
        "HANSHU_GATEWAY_URL": "http://gateway.example",
        "HANSHU_RUNTIME_IMAGE": "registry.example/hanshu/runtime:test",
    }


def reconciled_function(objects: Any, index: int) -> bool:
    """Its code ConfigMap, Deployment and Service exist, and its status has its URL."""
    name = f"fn-{index}"
    for resource, child in (
        ("v1/configmaps", f"{name}-code"),
        ("apps/v1/deployments", name),
        ("v1/services", name),
    ):
        try:
            if objects[resource, NAMESPACE, child].deleted:
                return False
        except KeyError:
            return False
    status = objects[f"{API_VERSION}/{FUNCTION_PLURAL}", NAMESPACE, name].get("status") or {}
    return bool(status.get("url"))


def ready(objects: Any, resource: str, name: str) -> bool:
    status = objects[resource, NAMESPACE, name].get("status") or {}
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )


async def test_5000_functions_with_triggers_fit_the_operators_memory_limit(
    operator_env: dict[str, str], tmp_path: Path
) -> None:
    limit = chart_memory_limit_mib(VALUES)
    functions, triggers = f"{API_VERSION}/{FUNCTION_PLURAL}", f"{API_VERSION}/{TRIGGER_PLURAL}"
    async with ForgetfulEmulator() as emulator, kmock.Server(emulator):
        declare_resources(emulator)
        for index in range(COUNT):  # already there when the operator starts
            emulator.objects[functions, NAMESPACE, f"fn-{index}"] = function(index)
            emulator.objects[triggers, NAMESPACE, f"trg-{index}"] = trigger(index)
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", str(emulator.url), NAMESPACE)
        env = {**operator_env, "KUBECONFIG": str(kubeconfig)}
        log = (tmp_path / "operator.log").open("wb")
        operator = subprocess.Popen(
            [sys.executable, "-c", AS_IN_THE_IMAGE], env=env, stdout=log, stderr=log
        )
        prober = LivenessProber(f"http://127.0.0.1:{env['HANSHU_OPERATOR_LIVENESS_PORT']}/healthz")
        pending_functions, pending_triggers = set(range(COUNT)), set(range(COUNT))
        try:
            # Until every Function has its children and its URL and every Trigger is
            # Ready: checked in kmock's store, only what is still pending.
            deadline = time.monotonic() + DEADLINE_SECONDS
            while pending_functions or pending_triggers:
                assert operator.poll() is None, (tmp_path / "operator.log").read_text()[-3000:]
                assert time.monotonic() < deadline, (
                    f"{len(pending_functions)} Functions without children or URL and "
                    f"{len(pending_triggers)} Triggers not Ready after {DEADLINE_SECONDS} s"
                )
                await asyncio.sleep(1)  # kmock serves from this loop: poll, do not spin
                pending_functions -= {
                    i for i in pending_functions if reconciled_function(emulator.objects, i)
                }
                pending_triggers -= {
                    i for i in pending_triggers if ready(emulator.objects, triggers, f"trg-{i}")
                }
            peak = peak_rss_mib(operator.pid)
        finally:
            slowest = prober.stop()
            operator.terminate()
            operator.wait(timeout=60)
            log.close()

        print(f"\noperator peak RSS {peak:.1f} MiB (limit {limit:.0f} MiB)")
        print(f"slowest liveness answer {slowest:.2f} s")
        assert peak < limit
        assert slowest < PROBE_TIMEOUT_SECONDS
        assert not pending_functions
        assert not pending_triggers
