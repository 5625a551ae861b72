"""A folder of code becomes the objects ``hanshu deploy`` applies.

``read_folder`` is the only I/O; ``plan_deploy`` is a pure function of what was read (spec in,
manifests out), so every rule here is tested without a cluster. The folder holds a Function
manifest (``function.yaml``, as ``hanshu init`` writes it), its Triggers, and the code; a
manifest without ``spec.code`` gets the folder's files: inline while small, a ConfigMap when
larger, an image (``--image``) for code that needs packages.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from hanshu_api import API_VERSION, LABEL_FUNCTION, LABEL_MANAGED_BY

from .errors import CliError
from .manifests import kind_of, load_documents

# Inline code lives in the Function object; past this it goes to a ConfigMap of its own
# (the Function stays small to list and watch), and past a ConfigMap's 1 MiB to an image.
INLINE_LIMIT_BYTES = 128 * 1024
CONFIG_MAP_LIMIT_BYTES = 1000 * 1024
MANAGED_BY_CLI = "hanshu-cli"
APPLIED_KINDS = {(API_VERSION, "Function"), (API_VERSION, "Trigger"), ("v1", "Secret")}
# Not code: what builds an image, describes the folder, or is a manifest.
NOT_CODE = {"requirements.txt", "Dockerfile", ".dockerignore", "README.md", "README"}
CODE_FILE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
FUNCTION_EXAMPLE = (
    "e.g. function.yaml with apiVersion: hanshu.io/v1alpha1, kind: Function, "
    "metadata.name: hello, spec.handler: index.handler (or run `hanshu init hello`)"
)


class FolderError(CliError):
    """The folder cannot become a Function as it is; the message says what to change."""


@dataclass(frozen=True)
class Folder:
    path: Path
    documents: list[dict[str, Any]]
    # Top-level code and data files by name (text), and what cannot be inlined.
    files: dict[str, str]
    nested_python: list[str] = field(default_factory=list)
    binary: list[str] = field(default_factory=list)
    requirements: list[str] = field(default_factory=list)
    has_dockerfile: bool = False
    # YAML files that hold no Kubernetes object (a SAM template): neither applied nor refused.
    skipped: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Plan:
    """What to apply, in order: Secrets and the code ConfigMap before the Function that
    needs them, the Triggers after it."""

    name: str
    namespace: str
    function: dict[str, Any]
    triggers: list[dict[str, Any]]
    config_map: dict[str, Any] | None = None
    secrets: list[dict[str, Any]] = field(default_factory=list)
    code_source: str = "manifest"  # inline, configMap, image or manifest (as written)

    def objects(self) -> list[dict[str, Any]]:
        first = [*self.secrets, *([self.config_map] if self.config_map else [])]
        return [*first, self.function, *self.triggers]


def read_folder(path: Path) -> Folder:
    """The manifests and code files of a folder (the only I/O of this module)."""
    if not path.exists():
        raise FolderError(f"{path} does not exist")
    if not path.is_dir():
        raise FolderError(f"{path} is not a folder: give the folder holding the code")
    documents: list[dict[str, Any]] = []
    files: dict[str, str] = {}
    binary: list[str] = []
    skipped: list[str] = []
    for entry in sorted(path.iterdir()):
        if entry.name.startswith(".") or entry.name == "__pycache__" or not entry.is_file():
            continue
        if entry.suffix in (".yaml", ".yml"):
            try:
                loaded = load_documents(entry.read_text())
            except yaml.YAMLError as bad:
                raise FolderError(f"{entry} is not valid YAML: {_one_line(bad)}") from bad
            objects = [d for d in loaded if isinstance(d, dict) and _is_object(d)]
            if len(objects) < len([d for d in loaded if d is not None]):
                # A SAM template beside the code is no Kubernetes object: nothing to apply.
                skipped.append(f"{entry.name} ({kind_of(loaded[0]) or 'not a manifest'})")
            documents += objects
            continue
        if entry.name in NOT_CODE or entry.suffix == ".pyc":
            continue
        try:
            files[entry.name] = entry.read_text()
        except UnicodeDecodeError:
            binary.append(entry.name)
    nested = sorted(
        str(p.relative_to(path))
        for p in path.rglob("*.py")
        if p.parent != path and not any(part.startswith(".") for part in p.parts)
    )
    requirements_file = path / "requirements.txt"
    requirements = (
        [
            line.strip()
            for line in requirements_file.read_text().splitlines()
            if line.strip() and not line.strip().startswith("#")
        ]
        if requirements_file.exists()
        else []
    )
    return Folder(
        path,
        documents,
        files,
        nested,
        binary,
        requirements,
        (path / "Dockerfile").exists(),
        skipped,
    )


def _is_object(document: Mapping[str, Any]) -> bool:
    return bool(document.get("apiVersion")) and bool(document.get("kind"))


def _one_line(error: object) -> str:
    return " ".join(str(error).split())


def _kind(document: Mapping[str, Any]) -> tuple[str, str]:
    return (str(document.get("apiVersion", "")), str(document.get("kind", "")))


def split_handler(handler: str) -> tuple[str, str]:
    """``index.handler`` or ``index:handler`` -> (module, attribute)."""
    if ":" in handler:
        module, _, attribute = handler.partition(":")
    else:
        module, _, attribute = handler.rpartition(".")
    return module, attribute


def defines(source: str, name: str) -> bool:
    """Whether a module's top level binds ``name`` (def, async def, class, assignment,
    import), as ``getattr(module, name)`` would find it."""
    tree = ast.parse(source)
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            if node.name == name:
                return True
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                return True
        elif isinstance(node, ast.Import | ast.ImportFrom) and any(
            (alias.asname or alias.name.split(".")[0]) == name for alias in node.names
        ):
            return True
    return False


def check_handler(folder: Folder, handler: str, role: str = "handler") -> None:
    """The handler's module is in the folder and defines it; else say what is missing."""
    module, attribute = split_handler(handler)
    if not module or not attribute:
        raise FolderError(
            f"spec.{role} {handler!r} must be module.function, e.g. index.handler "
            "(index.py defines def handler(event, context))"
        )
    file_name = f"{module.replace('.', '/')}.py"
    source = folder.files.get(file_name)
    if source is None:
        present = ", ".join(sorted(n for n in folder.files if n.endswith(".py"))) or "none"
        raise FolderError(
            f"spec.{role} {handler!r} needs {file_name} in {folder.path} (Python files "
            f"there: {present}); e.g. {file_name} with def {attribute}(event, context): ..."
        )
    try:
        found = defines(source, attribute)
    except SyntaxError as bad:
        raise FolderError(
            f"{folder.path / file_name}, line {bad.lineno}: {bad.msg} (the handler's module "
            "must be valid Python)"
        ) from bad
    if not found:
        raise FolderError(
            f"{file_name} in {folder.path} defines no {attribute!r} (spec.{role} is "
            f"{handler!r}): add def {attribute}(event, context): ... to it"
        )


def build_command(folder: Folder, name: str) -> str:
    """The exact commands that build, push and deploy an image of this folder."""
    image = f"REGISTRY/{name}:v1"
    build = f"docker build -t {image} {folder.path}"
    if not folder.has_dockerfile:
        build = (
            f"add a Dockerfile (FROM hanshu/runtime, pip install -r requirements.txt, "
            f"COPY . /code), then {build}"
        )
    return f"{build} && docker push {image} && hanshu deploy {folder.path} --image {image}"


def plan_deploy(folder: Folder, namespace: str, image: str | None = None) -> Plan:
    """The objects that make this folder a running Function in ``namespace`` (a manifest's
    own namespace wins), or a FolderError saying what is missing."""
    kinds = [_kind(d) for d in folder.documents]
    functions = [d for d, k in zip(folder.documents, kinds, strict=True) if k[1] == "Function"]
    unknown = sorted({f"{k[1]} ({k[0]})" for k in kinds if k not in APPLIED_KINDS})
    if unknown:
        raise FolderError(
            f"{folder.path} holds {', '.join(unknown)}: hanshu deploy applies Functions, "
            "Triggers and Secrets (apply the rest with kubectl)"
        )
    if not functions:
        raise FolderError(f"{folder.path} has no Function manifest: {FUNCTION_EXAMPLE}")
    if len(functions) > 1:
        names = ", ".join(str((f.get("metadata") or {}).get("name")) for f in functions)
        raise FolderError(
            f"{folder.path} holds {len(functions)} Functions ({names}): deploy one folder "
            "per Function"
        )
    function = _copy(functions[0])
    meta = function.setdefault("metadata", {})
    name = meta.get("name")
    if not name:
        raise FolderError(f"the Function in {folder.path} has no metadata.name")
    namespace = meta.setdefault("namespace", namespace)
    spec = function.setdefault("spec", {})
    handler = spec.get("handler")
    if not handler:
        raise FolderError(
            f"Function {name} has no spec.handler: set it to module.function, e.g. "
            "index.handler for def handler(event, context) in index.py"
        )
    config_map = None
    if image is not None:
        spec["code"] = {"image": image}
        source = "image"
    elif spec.get("code"):
        source = "manifest"
        if (spec["code"] or {}).get("inline") is not None:
            folder = Folder(folder.path, [], dict(spec["code"]["inline"]))
            check_handler(folder, str(handler))
    else:
        check_handler(folder, str(handler))
        if spec.get("initializer"):
            check_handler(folder, str(spec["initializer"]), "initializer")
        spec["code"], config_map, source = _code_from_folder(folder, str(name), namespace)
    triggers = [
        _namespaced(d, namespace)
        for d, k in zip(folder.documents, kinds, strict=True)
        if k[1] == "Trigger"
    ]
    for trigger in triggers:
        ref = ((trigger.get("spec") or {}).get("functionRef") or {}).get("name")
        if ref != name:
            raise FolderError(
                f"Trigger {trigger['metadata'].get('name')} in {folder.path} calls Function "
                f"{ref!r}, not this folder's Function {name!r}"
            )
    secrets = [
        _namespaced(d, namespace)
        for d, k in zip(folder.documents, kinds, strict=True)
        if k == ("v1", "Secret")
    ]
    return Plan(str(name), namespace, function, triggers, config_map, secrets, source)


def _code_from_folder(
    folder: Folder, name: str, namespace: str
) -> tuple[dict[str, Any], dict[str, Any] | None, str]:
    if folder.requirements:
        raise FolderError(
            f"requirements.txt lists packages ({', '.join(folder.requirements[:3])}"
            f"{', ...' if len(folder.requirements) > 3 else ''}) that inline code cannot "
            f"install; deploy an image: {build_command(folder, name)}"
        )
    if folder.nested_python:
        raise FolderError(
            f"{folder.path} has Python files in subfolders ({', '.join(folder.nested_python[:3])})"
            f"; inline code is flat files, so deploy an image: {build_command(folder, name)}"
        )
    if folder.binary:
        raise FolderError(
            f"{', '.join(folder.binary)} in {folder.path} is not text; inline code is text "
            f"files, so deploy an image: {build_command(folder, name)}"
        )
    bad_names = [n for n in folder.files if not CODE_FILE_NAME.match(n)]
    if bad_names:
        raise FolderError(
            f"file names {', '.join(bad_names)} cannot be inline code (letters, digits, "
            "'_', '.', '-'): rename them or deploy an image"
        )
    size = sum(len(content.encode()) for content in folder.files.values())
    if size <= INLINE_LIMIT_BYTES:
        return {"inline": dict(folder.files)}, None, "inline"
    if size <= CONFIG_MAP_LIMIT_BYTES:
        config_map_name = f"{name}-code"
        config_map = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": config_map_name,
                "namespace": namespace,
                "labels": {LABEL_FUNCTION: name, LABEL_MANAGED_BY: MANAGED_BY_CLI},
            },
            "data": dict(folder.files),
        }
        return {"configMap": {"name": config_map_name}}, config_map, "configMap"
    raise FolderError(
        f"the code in {folder.path} is {size // 1024} KiB, more than a ConfigMap holds "
        f"(1 MiB); deploy an image: {build_command(folder, name)}"
    )


def _namespaced(document: Mapping[str, Any], namespace: str) -> dict[str, Any]:
    copied = _copy(document)
    copied.setdefault("metadata", {}).setdefault("namespace", namespace)
    return copied


def _copy(document: Mapping[str, Any]) -> dict[str, Any]:
    copied: dict[str, Any] = yaml.safe_load(yaml.safe_dump(dict(document)))
    return copied
