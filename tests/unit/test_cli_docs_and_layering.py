"""docs/cli.md is the command's own help, and the packages import one way (DESIGN.md):
hanshu_runtime imports nothing of ours but hanshu_wire; the components import only
hanshu_api (the gateway also hanshu_wire); the command and dev mode may import them all.

hanshu_wire is the HTTP/1.1 wire rules (what frames a request, the header and token sets)
that the runtime's server, the gateway's public port and the gateway's client to replicas
must agree on: one copy, so a smuggling fix lands once. It imports nothing of ours (nor
anything outside the standard library), so the runtime's image and boot do not grow."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from hanshu_cli.docs import render

ROOT = Path(__file__).resolve().parents[2]
OURS = {
    "hanshu_api",
    "hanshu_wire",
    "hanshu_runtime",
    "hanshu_operator",
    "hanshu_autoscaler",
    "hanshu_gateway",
    "hanshu_dispatcher",
    "hanshu_cli",
}
ALLOWED = {
    "hanshu_api": {"hanshu_api"},
    "hanshu_wire": {"hanshu_wire"},
    "hanshu_runtime": {"hanshu_runtime", "hanshu_wire"},
    "hanshu_operator": {"hanshu_operator", "hanshu_api"},
    "hanshu_autoscaler": {"hanshu_autoscaler", "hanshu_api"},
    "hanshu_gateway": {"hanshu_gateway", "hanshu_api", "hanshu_wire"},
    "hanshu_dispatcher": {"hanshu_dispatcher", "hanshu_api"},
    "hanshu_cli": OURS,
}
FOLDERS = {
    "hanshu_api": "api",
    "hanshu_wire": "wire",
    "hanshu_runtime": "runtime",
    "hanshu_operator": "operator",
    "hanshu_autoscaler": "autoscaler",
    "hanshu_gateway": "gateway",
    "hanshu_dispatcher": "dispatcher",
    "hanshu_cli": "cli",
}


def test_docs_cli_is_generated_from_the_current_help() -> None:
    target = ROOT / "docs" / "cli.md"
    assert target.exists(), f"{target} is missing: run `make docs`"
    assert target.read_text() == render(), f"{target} is stale: run `make docs`"


def imported_packages(source: str) -> set[str]:
    """The top-level packages a module imports (lazy imports inside functions too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_imported_packages_sees_lazy_and_dotted_imports() -> None:
    source = (
        "import hanshu_api.kube\ndef f():\n    from hanshu_operator.x import y\nfrom . import z\n"
    )
    assert imported_packages(source) == {"hanshu_api", "hanshu_operator"}


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_each_package_imports_only_what_the_layering_allows(package: str) -> None:
    folder = ROOT / FOLDERS[package] / package
    assert folder.is_dir(), folder
    wrong = {
        f"{path.relative_to(ROOT)} imports {imported}"
        for path in sorted(folder.rglob("*.py"))
        for imported in imported_packages(path.read_text()) & OURS
        if imported not in ALLOWED[package]
    }
    assert not wrong, sorted(wrong)


def test_hanshu_api_holds_only_what_two_components_share() -> None:
    """Each hanshu_api module is imported by two or more of operator, autoscaler, gateway and
    dispatcher, or supports one that is (models parses cron, durations, quantities); what
    only dev mode and the tests use lives in hanshu_cli, what only one component uses in
    that component."""
    users: dict[str, set[str]] = {}
    for package in ("hanshu_operator", "hanshu_autoscaler", "hanshu_gateway", "hanshu_dispatcher"):
        for path in (ROOT / FOLDERS[package] / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                    "hanshu_api"
                ):
                    names = [node.module or ""]
                    if node.module == "hanshu_api":
                        names = [f"hanshu_api.{alias.name}" for alias in node.names]
                    for name in names:
                        users.setdefault(name, set()).add(package)
    api = ROOT / "api" / "hanshu_api"
    for path in api.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
                users.setdefault(f"hanshu_api.{node.module}", set()).add("hanshu_api")
    modules = {f"hanshu_api.{p.stem}" for p in api.glob("*.py") if p.stem != "__init__"}
    lonely = {
        module: sorted(users.get(module, set()))
        for module in modules
        if len(users.get(module, set()) - {"hanshu_api"}) < 2
        and "hanshu_api" not in users.get(module, set())
    }
    assert not lonely, lonely
