"""What dev mode says of a Function whose code cannot start: the runtime's one fault line,
with a fix that is right on this machine.

The runtime's fix for a missing package is the cluster's (add it to the image); dev mode
runs every replica with the Python running ``hanshu dev`` and installs nothing, not even
the folder's requirements.txt, so the fix here is a ``pip install`` into that Python.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

# The runtime's ImportModuleError for a module its code imports that is not installed.
_NOT_INSTALLED = re.compile(r"it imports '(?P<module>[\w.]+)', which is not installed")
# Where the runtime's line gives its fix (faults.StartupFault.one_line).
_FIX = ". Fix: "
# How the reload is asked for: any change in the Function's folder.
RETRY = "dev mode starts it again when a file of the Function changes"


def local_fix(line: str, code_dir: Path, python: str) -> str:
    """The runtime's fault ``line`` with its fix replaced by what to do on this machine
    (only a missing package's fix differs), and how to have dev mode try again."""
    found = _NOT_INSTALLED.search(line)
    if found is None:
        return f"{line} ({RETRY})"
    said = line.split(_FIX, 1)[0]
    package = found["module"].split(".")[0]
    pip = f"{shlex.quote(python)} -m pip install"
    fix = (
        f"install the package that provides '{package}' into the Python dev mode runs "
        f"replicas with: {pip} {package}"
    )
    requirements = code_dir / "requirements.txt"
    if requirements.is_file():
        fix += (
            f" (dev mode does not install {requirements}: {pip} -r "
            f"{shlex.quote(str(requirements))})"
        )
    return f"{said}{_FIX}{fix}; then save a file of the Function ({RETRY})"


def requirements_note(name: str, code_dir: Path, python: str) -> str | None:
    """A line for a Function whose folder has a requirements.txt, which dev mode does not
    install (its replicas use the packages of ``python``); None without one."""
    requirements = code_dir / "requirements.txt"
    if not requirements.is_file():
        return None
    return (
        f"Function {name}: dev mode does not install {requirements}; its replicas import "
        f"what {python} has (install it there: {shlex.quote(python)} -m pip install -r "
        f"{shlex.quote(str(requirements))})"
    )
