"""Reading Function, Trigger and Secret manifests from YAML files (the developer mode)."""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from hanshu_api import API_VERSION
from hanshu_api.platform import FunctionKey


@dataclass
class ManifestSet:
    functions: dict[FunctionKey, dict[str, Any]] = field(default_factory=dict)
    triggers: dict[FunctionKey, dict[str, Any]] = field(default_factory=dict)
    secrets: dict[FunctionKey, dict[str, str]] = field(default_factory=dict)
    # The folder of each Function's manifest: where dev mode finds an image Function's code.
    folders: dict[FunctionKey, Path] = field(default_factory=dict)


def secret_data(secret: dict[str, Any]) -> dict[str, str]:
    data = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
    data.update(secret.get("stringData") or {})
    return data


def load_manifests(paths: Iterable[str | Path], namespace: str = "default") -> ManifestSet:
    """Every Function, Trigger and Secret in the given files (or folders of .yaml files)."""
    found = ManifestSet()
    files: list[Path] = []
    for path in map(Path, paths):
        files += sorted(path.rglob("*.yaml")) if path.is_dir() else [path]
    for file in files:
        for document in yaml.safe_load_all(file.read_text()):
            if not document:
                continue
            meta = document.get("metadata") or {}
            key = (meta.get("namespace") or namespace, meta["name"])
            if document.get("apiVersion") == API_VERSION and document.get("kind") == "Function":
                found.functions[key] = document
                found.folders[key] = file.parent
            elif document.get("apiVersion") == API_VERSION and document.get("kind") == "Trigger":
                found.triggers[key] = document
            elif document.get("kind") == "Secret":
                found.secrets[key] = secret_data(document)
    return found
