"""Checks that what a Function refers to exists: its code ConfigMap, Secrets, ConfigMaps."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hanshu_api.kube import KubeClient, path_for
from hanshu_api.models import FunctionSpec, module_of


@dataclass(frozen=True, slots=True)
class Missing:
    reason: str
    message: str


async def _exists(
    kube: KubeClient, plural: str, namespace: str, name: str
) -> Mapping[str, Any] | None:
    return await kube.get(path_for("v1", plural, namespace, name))


async def resolve_code(
    kube: KubeClient, namespace: str, spec: FunctionSpec
) -> tuple[Mapping[str, str] | None, Missing | None]:
    """The referenced code ConfigMap's files, or what is missing."""
    if spec.code.config_map is None:
        return None, None
    config_map = await _exists(kube, "configmaps", namespace, spec.code.config_map)
    if config_map is None:
        return None, Missing(
            "ConfigMapNotFound",
            f"the code ConfigMap '{spec.code.config_map}' (spec.code.configMap) does not exist "
            f"in namespace '{namespace}'; create it with your source files as keys",
        )
    files: Mapping[str, str] = config_map.get("data") or {}
    module_file = f"{module_of(spec.handler)}.py"
    if "." not in module_of(spec.handler) and module_file not in files:
        return None, Missing(
            "HandlerModuleMissing",
            f"the code ConfigMap '{spec.code.config_map}' has no key '{module_file}' for the "
            f"handler '{spec.handler}' (keys: {', '.join(sorted(files)) or 'none'})",
        )
    return files, None


async def missing_env_sources(
    kube: KubeClient, namespace: str, spec: FunctionSpec
) -> list[Missing]:
    """Secrets and ConfigMaps named in env / envFrom (and not optional) that do not exist."""
    wanted: list[tuple[str, str, str | None, str]] = []  # (plural, name, key, where)
    for entry in spec.env:
        source = entry.get("valueFrom") or {}
        for field, plural in (("secretKeyRef", "secrets"), ("configMapKeyRef", "configmaps")):
            ref = source.get(field)
            if ref and not ref.get("optional", False):
                wanted.append((plural, ref.get("name", ""), ref.get("key"), f"env {entry['name']}"))
    for entry in spec.env_from:
        for field, plural in (("secretRef", "secrets"), ("configMapRef", "configmaps")):
            ref = entry.get(field)
            if ref and not ref.get("optional", False):
                wanted.append((plural, ref.get("name", ""), None, "envFrom"))
    missing = []
    for plural, name, key, where in wanted:
        kind = "Secret" if plural == "secrets" else "ConfigMap"
        found = await _exists(kube, plural, namespace, name)
        if found is None:
            missing.append(
                Missing(
                    f"{kind}NotFound",
                    f"the {kind} '{name}' ({where}) does not exist in namespace '{namespace}'",
                )
            )
        elif key is not None and key not in (found.get("data") or {}) | (
            found.get("stringData") or {}
        ):
            missing.append(
                Missing(f"{kind}KeyNotFound", f"the {kind} '{name}' has no key '{key}' ({where})")
            )
    return missing
