"""Each component's image installs one extra of pyproject.toml (``pip install '.[gateway]'``
in gateway/Dockerfile): every third-party module the component imports, with the
hanshu_api modules it imports, must come with that extra, directly or as a dependency of
one. No container engine runs here to build the images, so this is what catches a new
import (httptools on the gateway's public port) that would leave an image unable to start.
An import inside ``try: ... except ImportError`` is optional and not required."""

from __future__ import annotations

import ast
import sys
import tomllib
from importlib.metadata import PackageNotFoundError, packages_distributions, requires
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.support.packages import FOLDERS

ROOT = Path(__file__).resolve().parents[2]
# The image of each component, by the extra its Dockerfile installs.
IMAGES = {
    "hanshu_runtime": "runtime",
    "hanshu_gateway": "gateway",
    "hanshu_operator": "operator",
    "hanshu_autoscaler": "autoscaler",
    "hanshu_dispatcher": "dispatcher",
}


def _optional(tree: ast.AST) -> set[int]:
    """Line numbers of imports guarded by ``except ImportError``."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(
            isinstance(handler.type, ast.Name)
            and handler.type.id in ("ImportError", "ModuleNotFoundError")
            for handler in node.handlers
        ):
            lines |= {
                child.lineno
                for part in node.body
                for child in ast.walk(part)
                if isinstance(child, ast.Import | ast.ImportFrom)
            }
    return lines


def _module_file(dotted: str) -> list[Path]:
    top = dotted.split(".")[0]
    base = ROOT / FOLDERS[top] / Path(*dotted.split("."))
    return [path for path in (base.with_suffix(".py"), base / "__init__.py") if path.exists()]


def required_imports(package: str) -> dict[str, str]:
    """Third-party top-level modules the package needs, each with a file that imports it:
    its own modules and the hanshu_api modules it reaches, relative imports followed."""
    # hanshu_wire: the HTTP/1.1 rules the runtime and the gateway share (standard library
    # only); their Dockerfiles copy it.
    allowed_ours = {package, "hanshu_api", "hanshu_wire"}
    pending = list((ROOT / FOLDERS[package] / package).rglob("*.py"))
    seen: set[Path] = set()
    needed: dict[str, str] = {}
    while pending:
        path = pending.pop()
        if path in seen:
            continue
        seen.add(path)
        tree = ast.parse(path.read_text())
        optional = _optional(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in allowed_ours:
                    pending.extend(_module_file(name))
                elif (
                    top not in sys.stdlib_module_names
                    and top not in ("__future__", *FOLDERS)
                    and node.lineno not in optional
                ):
                    needed.setdefault(top, str(path.relative_to(ROOT)))
    return needed


def provided_by(extra: str) -> set[str]:
    """Top-level modules the extra's distributions and all they depend on provide."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [Requirement(text) for text in project.get("dependencies", [])]
    wanted += [Requirement(text) for text in project["optional-dependencies"][extra]]
    distributions: set[str] = set()
    while wanted:
        requirement = wanted.pop()
        name = canonicalize_name(requirement.name)
        if name in distributions:
            continue
        distributions.add(name)
        try:
            dependencies = requires(requirement.name) or []
        except PackageNotFoundError:
            continue  # not installed here: its modules are not counted as provided
        for text in dependencies:
            dependency = Requirement(text)
            # Only what a plain install brings: not the dependency's own extras.
            if dependency.marker is None or dependency.marker.evaluate({"extra": ""}):
                wanted.append(dependency)
    return {
        module
        for module, owners in packages_distributions().items()
        if any(canonicalize_name(owner) in distributions for owner in owners)
    }


@pytest.mark.parametrize("package", sorted(IMAGES))
def test_each_image_installs_what_its_component_imports(package: str) -> None:
    extra = IMAGES[package]
    available = provided_by(extra)
    missing = {
        f"{module} (imported in {where})"
        for module, where in required_imports(package).items()
        if module not in available
    }
    assert not missing, f"add to the '{extra}' extra in pyproject.toml: {sorted(missing)}"


def test_the_check_sees_a_missing_dependency() -> None:
    assert "httptools" in required_imports("hanshu_gateway")
    assert "httptools" not in provided_by("dispatcher")
    assert "multidict" in provided_by("dispatcher")  # through aiohttp's own dependencies
