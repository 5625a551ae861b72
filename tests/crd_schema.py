"""A small stand-in for kube-apiserver's CRD handling, for tests: the structural-schema
rules, OpenAPI v3 validation with defaulting, and CEL x-kubernetes-validations evaluated with
cel-python. It checks what a real apiserver would reject, so a broken CRD or example fails
here rather than at a user's ``kubectl apply``."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import celpy
import yaml

ROOT = Path(__file__).resolve().parent.parent
CRD_DIR = ROOT / "crds"
_TYPES = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "integer": int,
    "number": (int, float),
}


def load_crds() -> dict[str, dict[str, Any]]:
    """kind -> CRD document."""
    crds = {}
    for path in sorted(CRD_DIR.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        crds[crd["spec"]["names"]["kind"]] = crd
    return crds


def schema_of(crd: dict[str, Any]) -> dict[str, Any]:
    (version,) = [v for v in crd["spec"]["versions"] if v["storage"]]
    return version["schema"]["openAPIV3Schema"]


def structural_problems(node: dict[str, Any], path: str = "", *, top: bool = True) -> list[str]:
    """Kubernetes' structural-schema rules, plus ours: every field has a description."""
    problems: list[str] = []
    here = path or "<root>"
    int_or_string = node.get("x-kubernetes-int-or-string") is True
    preserve = node.get("x-kubernetes-preserve-unknown-fields") is True
    if "type" not in node and not int_or_string and not preserve:
        problems.append(f"{here}: no type")
    if "anyOf" in node and not int_or_string:
        problems.append(f"{here}: anyOf is only allowed for x-kubernetes-int-or-string")
    if "properties" in node and "additionalProperties" in node:
        problems.append(f"{here}: properties and additionalProperties are exclusive")
    if node.get("type") == "array" and "items" not in node:
        problems.append(f"{here}: an array needs items")
    for forbidden in ("$ref", "uniqueItems", "x-kubernetes-embedded-resource"):
        if forbidden in node:
            problems.append(f"{here}: {forbidden} is not allowed here")
    if node.get("x-kubernetes-list-type") == "map":
        keys = node.get("x-kubernetes-list-map-keys") or []
        required = set(node.get("items", {}).get("required") or [])
        if not keys or not set(keys) <= required:
            problems.append(f"{here}: list-type map keys must be required item fields")
    for name, child in (node.get("properties") or {}).items():
        child_path = f"{path}.{name}" if path else name
        if top and name == "metadata":
            if set(child) - {"type"}:
                problems.append("metadata: only 'type: object' may be given at the root")
            continue
        if top and name in ("apiVersion", "kind"):
            continue
        if not child.get("description"):
            problems.append(f"{child_path}: no description (kubectl explain shows it)")
        problems += structural_problems(child, child_path, top=False)
    if isinstance(node.get("additionalProperties"), dict):
        problems += structural_problems(node["additionalProperties"], f"{path}.*", top=False)
    if isinstance(node.get("items"), dict):
        problems += structural_problems(node["items"], f"{path}[*]", top=False)
    if "default" in node:
        problems += [
            f"{here}: default is invalid: {p}"
            for p in validate(copy.deepcopy(node["default"]), node, path)
        ]
    return problems


def apply_defaults(value: Any, node: dict[str, Any]) -> Any:
    if isinstance(value, dict):
        for name, child in (node.get("properties") or {}).items():
            if name not in value and "default" in child:
                value[name] = copy.deepcopy(child["default"])
            if name in value:
                value[name] = apply_defaults(value[name], child)
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            for key in list(value):
                value[key] = apply_defaults(value[key], extra)
    elif isinstance(value, list) and isinstance(node.get("items"), dict):
        return [apply_defaults(item, node["items"]) for item in value]
    return value


_cel_env = celpy.Environment()


def _cel(rule: str, value: Any) -> bool:
    program = _cel_env.program(_cel_env.compile(rule))
    return bool(program.evaluate({"self": celpy.json_to_cel(value)}))


def validate(value: Any, node: dict[str, Any], path: str = "") -> list[str]:
    """What the apiserver would answer, as 'field: problem' lines (after defaulting)."""
    here = path or "<root>"
    errors: list[str] = []
    kind = node.get("type")
    if node.get("x-kubernetes-int-or-string"):
        if not isinstance(value, int | str) or isinstance(value, bool):
            return [f"{here}: must be an integer or a string"]
    elif kind is not None:
        expected = _TYPES[kind]
        if not isinstance(value, expected) or (
            kind in ("integer", "number") and isinstance(value, bool)
        ):
            return [f"{here}: must be of type {kind}, got {type(value).__name__}"]
    if isinstance(value, str):
        if "pattern" in node and not re.search(node["pattern"], value):
            errors.append(f"{here}: {value!r} does not match {node['pattern']}")
        if "enum" in node and value not in node["enum"]:
            errors.append(f"{here}: {value!r} is not one of {node['enum']}")
        if len(value) > node.get("maxLength", 10**9):
            errors.append(f"{here}: longer than {node['maxLength']}")
        if len(value) < node.get("minLength", 0):
            errors.append(f"{here}: shorter than {node['minLength']}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in node:
            low = node["minimum"]
            if value < low or (node.get("exclusiveMinimum") and value == low):
                errors.append(f"{here}: {value} is below the minimum {low}")
        if "maximum" in node and value > node["maximum"]:
            errors.append(f"{here}: {value} is above the maximum {node['maximum']}")
    if isinstance(value, dict):
        for name in node.get("required") or []:
            if name not in value:
                errors.append(f"{path + '.' if path else ''}{name}: Required value")
        properties = node.get("properties") or {}
        extra = node.get("additionalProperties")
        if len(value) > node.get("maxProperties", 10**9):
            errors.append(f"{here}: more than {node['maxProperties']} properties")
        for name, item in value.items():
            child_path = f"{path}.{name}" if path else name
            if name in properties:
                if path == "" and name == "metadata":
                    continue
                errors += validate(item, properties[name], child_path)
            elif isinstance(extra, dict):
                errors += validate(item, extra, child_path)
            elif not node.get("x-kubernetes-preserve-unknown-fields") and (
                properties or extra is False
            ):
                errors.append(f"{child_path}: unknown field (the apiserver would prune it)")
    if isinstance(value, list) and isinstance(node.get("items"), dict):
        for index, item in enumerate(value):
            errors += validate(item, node["items"], f"{path}[{index}]")
    if not errors:
        for validation in node.get("x-kubernetes-validations") or []:
            if not _cel(validation["rule"], value):
                errors.append(f"{here}: {validation['message']}")
    return errors


def admit(
    obj: dict[str, Any], crds: dict[str, dict[str, Any]] | None = None
) -> tuple[dict[str, Any], list[str]]:
    """Default and validate ``obj`` like the apiserver: (defaulted object, errors)."""
    crds = crds or load_crds()
    schema = schema_of(crds[obj["kind"]])
    defaulted = apply_defaults(copy.deepcopy(obj), schema)
    return defaulted, validate(defaulted, schema)
