"""kmock set up as a Kubernetes API with Hanshu's resources (tests and benchmarks)."""

from __future__ import annotations

from pathlib import Path

import kmock
from hanshu_api import API_VERSION, FUNCTION_PLURAL, TRIGGER_PLURAL


def declare_resources(emulator: kmock.KubernetesEmulator) -> None:
    """The built-in resources plus our CRDs, as discovery would show them."""
    emulator.resources.load_bundled()
    verbs = {"get", "list", "watch", "create", "patch", "update", "delete"}
    for plural, kind, short in (
        (FUNCTION_PLURAL, "Function", "fn"),
        (TRIGGER_PLURAL, "Trigger", "trg"),
    ):
        emulator.resources[f"{API_VERSION}/{plural}"] = kmock.ResourceInfo(
            kind=kind,
            singular=kind.lower(),
            namespaced=True,
            verbs=verbs,
            subresources={"status"},
            shortnames={short},
            categories={"hanshu"},
        )


def write_kubeconfig(path: Path, server: str, namespace: str = "default") -> Path:
    path.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: kmock\n"
        f"clusters: [{{name: kmock, cluster: {{server: '{server}'}}}}]\n"
        "contexts: [{name: kmock, context: "
        f"{{cluster: kmock, user: kmock, namespace: {namespace}}}}}]\n"
        "users: [{name: kmock, user: {}}]\n"
    )
    return path
