"""The packages import one way (DESIGN.md):
hanshu_runtime imports nothing of ours but hanshu_wire; the components import only
hanshu_api (the gateway also hanshu_wire); the command and dev mode may import them all.

hanshu_wire is the HTTP/1.1 wire rules (what frames a request, the header and token sets)
that the runtime's server, the gateway's public port and the gateway's client to replicas
must agree on: one copy, so a smuggling fix lands once. It imports nothing of ours (nor
anything outside the standard library), so the runtime's image and boot do not grow.

The tests and benchmarks import one way too: a test imports tests/support/ (and
tests/crd_schema.py), never another test module or a conftest.py; bench/ imports nothing
from tests/ (what both use, the Kubernetes API emulator, is in devtools/); nothing shipped
imports tests/, bench/ or devtools/."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.support.packages import FOLDERS

ROOT = Path(__file__).resolve().parents[2]
OURS = set(FOLDERS)
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
DEVELOPMENT = {"tests", "bench", "devtools"}
USER_CODE = {"runtime_code", "runtime_stdlib"}


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
    """Each hanshu_api module is imported by two or more of operator, autoscaler, gateway
    and dispatcher, or supports one that is (models parses cron, durations, quantities); what
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


def imported_modules(source: str, package: str = "") -> set[str]:
    """The dotted modules a module imports (lazy imports too); a relative import is
    resolved against ``package``, the importing module's package."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            parts = package.split(".") if node.level else []
            base = ".".join([*parts[: len(parts) - node.level + 1], node.module or ""])
            base = base.strip(".")
            found.add(base)
            # ``from . import conftest`` imports a module, not a name from one.
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return found


def development_files() -> list[Path]:
    """Our Python files in tests/, bench/ and devtools/, without the function code the
    runtime tests load as a user's (tests/integration/runtime_code/, one file of which
    is broken on purpose)."""
    return [
        path
        for folder in sorted(DEVELOPMENT)
        for path in sorted((ROOT / folder).rglob("*.py"))
        if not USER_CODE & set(path.parts)
    ]


def package_of(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).parent.parts)


def is_test_module(dotted: str) -> bool:
    """A module pytest collects or loads itself: a test file or a conftest.py."""
    name = dotted.rsplit(".", 1)[-1]
    return dotted.startswith("tests.") and (name.startswith("test_") or name == "conftest")


def test_is_test_module_tells_a_test_from_support() -> None:
    assert is_test_module("tests.integration.gateway.test_kube_gateway")
    assert is_test_module("tests.integration.gateway.conftest")
    assert is_test_module("tests.conftest")
    assert not is_test_module("tests.support.helpers")
    assert not is_test_module("tests.crd_schema")
    lazy = imported_modules("def f():\n    from tests.conftest import x\n")
    assert "tests.conftest" in lazy
    relative = imported_modules("from .conftest import Cluster\n", "tests.e2e")
    assert "tests.e2e.conftest" in relative
    sibling = imported_modules("from . import test_apply\n", "tests.e2e")
    assert "tests.e2e.test_apply" in sibling


def test_no_module_imports_a_test_module_or_a_conftest() -> None:
    wrong = {
        f"{path.relative_to(ROOT)} imports {module}"
        for path in development_files()
        for module in imported_modules(path.read_text(), package_of(path))
        if is_test_module(module)
    }
    assert not wrong, sorted(wrong)


@pytest.mark.parametrize("folder", ["bench", "devtools"])
def test_benchmarks_and_devtools_import_nothing_from_tests(folder: str) -> None:
    wrong = {
        f"{path.relative_to(ROOT)} imports tests"
        for path in sorted((ROOT / folder).rglob("*.py"))
        if "tests" in imported_packages(path.read_text())
    }
    assert not wrong, sorted(wrong)


@pytest.mark.parametrize("package", sorted(FOLDERS))
def test_nothing_shipped_imports_tests_bench_or_devtools(package: str) -> None:
    wrong = {
        f"{path.relative_to(ROOT)} imports {imported}"
        for path in sorted((ROOT / FOLDERS[package] / package).rglob("*.py"))
        for imported in imported_packages(path.read_text()) & DEVELOPMENT
    }
    assert not wrong, sorted(wrong)
