"""Dev mode has no Kubernetes API: a kubernetes Trigger there is loaded, not served, and
the log says so (no fake API stands in for a cluster)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import yaml
from hanshu_cli.devmode import DevStack
from hanshu_cli.local_platform import free_port


async def test_a_kubernetes_trigger_is_reported_as_not_served(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    manifest = tmp_path / "watch.yaml"
    manifest.write_text(
        yaml.safe_dump_all(
            [
                {
                    "apiVersion": "hanshu.io/v1alpha1",
                    "kind": "Function",
                    "metadata": {"name": "watch"},
                    "spec": {
                        "handler": "index.handler",
                        "code": {"inline": {"index.py": "def handler(e, c):\n    return 1\n"}},
                    },
                },
                {
                    "apiVersion": "hanshu.io/v1alpha1",
                    "kind": "Trigger",
                    "metadata": {"name": "maps"},
                    "spec": {
                        "functionRef": {"name": "watch"},
                        "kubernetes": {"apiVersion": "v1", "kind": "ConfigMap"},
                    },
                },
            ]
        )
    )
    caplog.set_level(logging.WARNING)
    stack = DevStack([manifest], port=free_port(), internal_port=free_port(), nats_url="off")
    await stack.start()
    try:
        lines = [r.getMessage() for r in caplog.records if "Trigger maps" in r.getMessage()]
        assert lines == [
            "Trigger maps is not served: kubernetes Triggers watch a cluster's objects, and dev "
            "mode has no cluster (deploy it to one to see its events)"
        ]
    finally:
        await stack.stop()
