"""Reading Function, Trigger and Secret manifests from YAML files (the developer mode).

A folder of Lambda code often holds other YAML too: a SAM ``template.yaml`` (with
CloudFormation's ``!Ref``, ``!GetAtt``, ``!Sub``), Kubernetes manifests of other kinds, Helm
templates (``{{ }}``, not YAML until rendered). Only Hanshu's kinds are loaded (and the
Secrets its Triggers name); every other file is skipped with one line saying which and why,
and no YAML tag stops the loading.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from hanshu_api import API_VERSION
from hanshu_api.platform import FunctionKey

from .errors import CliError

log = logging.getLogger("hanshu.dev")
HANSHU_KINDS = ("Function", "Trigger")
YAML_SUFFIXES = (".yaml", ".yml")


class ManifestError(CliError):
    """A Hanshu manifest that cannot be read as one; the message names the file."""


class TolerantLoader(yaml.SafeLoader):
    """SafeLoader that reads a tag it does not know (``!Ref x``, ``!GetAtt a.b``,
    ``!Sub ...``) as the plain value under it, instead of refusing the whole file: the
    documents that hold them are not Hanshu's and are skipped anyway."""


def _untagged(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_scalar(node)  # type: ignore[arg-type]


# None: any tag without a constructor of its own (the standard ones keep theirs).
TolerantLoader.add_constructor(None, _untagged)


def load_documents(text: str) -> list[Any]:
    """Every document of a YAML text, unknown tags read as plain values."""
    return list(yaml.load_all(text, Loader=TolerantLoader))


@dataclass
class ManifestSet:
    functions: dict[FunctionKey, dict[str, Any]] = field(default_factory=dict)
    triggers: dict[FunctionKey, dict[str, Any]] = field(default_factory=dict)
    secrets: dict[FunctionKey, dict[str, str]] = field(default_factory=dict)
    # The folder of each Function's manifest: where dev mode finds an image Function's code.
    folders: dict[FunctionKey, Path] = field(default_factory=dict)
    # (file, why) for each file that held something other than Hanshu's manifests.
    skipped: list[tuple[Path, str]] = field(default_factory=list)


def secret_data(secret: dict[str, Any]) -> dict[str, str]:
    data = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
    data.update(secret.get("stringData") or {})
    return data


def kind_of(document: Any) -> str | None:
    """What a document is, when it is not one dev mode loads; None when it is one
    (hanshu.io Function or Trigger, v1 Secret)."""
    if not isinstance(document, dict):
        return f"a {type(document).__name__}, not a manifest"
    api_version, kind = document.get("apiVersion"), document.get("kind")
    if not api_version or not kind:
        if "AWSTemplateFormatVersion" in document or "Transform" in document:
            return "an AWS SAM / CloudFormation template"
        return "no apiVersion and kind (not a Kubernetes manifest)"
    if api_version == API_VERSION and kind in HANSHU_KINDS:
        return None
    if api_version == "v1" and kind == "Secret":
        return None
    return f"{kind} ({api_version})"


def yaml_files(paths: Iterable[str | Path]) -> Iterator[Path]:
    for path in map(Path, paths):
        if not path.is_dir():
            yield path
            continue
        for found in sorted(p for s in YAML_SUFFIXES for p in path.rglob(f"*{s}")):
            if not any(part.startswith(".") for part in found.relative_to(path).parts):
                yield found


def _name(document: dict[str, Any], file: Path) -> str:
    name = (document.get("metadata") or {}).get("name")
    if not name:
        raise ManifestError(
            f"{file}: the {document.get('kind')} has no metadata.name (e.g. metadata: "
            "{name: hello})"
        )
    return str(name)


def load_manifests(
    paths: Iterable[str | Path],
    namespace: str = "default",
    report: Callable[[str], None] | None = None,
) -> ManifestSet:
    """Every Function, Trigger and Secret in the given files (or folders of .yaml / .yml
    files); each other file is skipped, said in one line to ``report`` (a log line)."""
    say = report or log.info
    found = ManifestSet()
    for file in yaml_files(paths):
        try:
            documents = load_documents(file.read_text())
        except yaml.YAMLError as bad:
            why = "not YAML (" + " ".join(str(bad).split())[:160] + ")"
            if file.suffix in YAML_SUFFIXES and "{{" in file.read_text():
                why = "a template ({{ }}), not YAML until rendered (helm template renders it)"
            found.skipped.append((file, why))
            continue
        others: list[str] = []
        for document in documents:
            if document is None:
                continue
            other = kind_of(document)
            if other is not None:
                if other not in others:
                    others.append(other)
                continue
            meta = document.get("metadata") or {}
            key = (meta.get("namespace") or namespace, _name(document, file))
            if document["kind"] == "Function":
                found.functions[key] = document
                found.folders[key] = file.parent
            elif document["kind"] == "Trigger":
                found.triggers[key] = document
            else:
                found.secrets[key] = secret_data(document)
        if others:
            found.skipped.append((file, ", ".join(others)))
    for file, why in found.skipped:
        say(f"skipped {file}: {why}; dev mode loads hanshu.io Functions and Triggers (and Secrets)")
    return found
