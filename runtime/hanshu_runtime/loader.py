"""Find and import the user's handler, turning every way that can fail into a typed fault."""

from __future__ import annotations

import importlib
import inspect
import logging
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .faults import (
    BuiltInModuleConflict,
    HandlerNotCallable,
    HandlerNotFound,
    ImportModuleError,
    MalformedHandlerName,
    UserCodeSyntaxError,
)

log = logging.getLogger("hanshu.runtime")

# The handler forms of hanshu_api.function_contract.HANDLER_PATTERN, kept here because the
# runtime imports nothing of ours; tests/unit/test_function_contract.py keeps them equal.
_DOTTED = r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*"
_COLON_FORM = re.compile(rf"^(?P<module>{_DOTTED}):(?P<attr>{_DOTTED})$")
_DOT_FORM = re.compile(rf"^(?P<module>{_DOTTED})\.(?P<attr>[A-Za-z_][A-Za-z0-9_]*)$")


@dataclass(frozen=True, slots=True)
class HandlerRef:
    module: str
    attribute: str

    def __str__(self) -> str:
        return f"{self.module}.{self.attribute}"


def parse_handler_ref(spec: str, *, variable: str = "HANSHU_HANDLER") -> HandlerRef:
    """``index.handler`` (module, then function) or ``app:server.app`` (module, then object)."""
    match = _COLON_FORM.match(spec) or _DOT_FORM.match(spec)
    if match is None:
        raise MalformedHandlerName(
            f"{variable}={spec!r} is not of the form 'module.function' or 'module:object'",
            f"set {variable} to e.g. 'index.handler' for index.py's def handler(event, context)",
        )
    ref = HandlerRef(match["module"], match["attr"])
    top_level = ref.module.split(".", 1)[0]
    if top_level in sys.stdlib_module_names:
        raise BuiltInModuleConflict(
            f"the handler module '{ref.module}' has the name of Python's built-in module "
            f"'{top_level}', so your file would never be imported",
            f"rename {top_level}.py (for example to {top_level}_handler.py) and update {variable}",
        )
    return ref


def _import(module: str, code_dir: str) -> Any:
    try:
        return importlib.import_module(module)
    except SyntaxError as error:
        where = f"{os.path.relpath(error.filename or module, code_dir)}:{error.lineno}"
        raise UserCodeSyntaxError(
            f"syntax error in module '{module}' at {where}: {error.msg}",
            f"correct the syntax at {where}",
        ) from error
    except ModuleNotFoundError as error:
        missing = error.name or ""
        if missing and (module == missing or module.startswith(missing + ".")):
            raise ImportModuleError(
                f"unable to import module '{module}': no file {module.replace('.', '/')}.py "
                f"in the code directory {code_dir}",
                "put the file in the function's code or correct the module part of the handler",
            ) from error
        raise ImportModuleError(
            f"unable to import module '{module}': it imports '{missing}', which is not installed",
            f"add '{missing}' to the function image (see docs/runtime.md, 'Dependencies')",
        ) from error
    except Exception as error:
        log.exception("importing module %r raised", module)
        raise ImportModuleError(
            f"unable to import module '{module}': importing it raised "
            f"{type(error).__name__}: {error}",
            "fix the code that runs at import time (the stack trace is in the log)",
        ) from error


def load_callable(ref: HandlerRef, code_dir: str, *, variable: str = "HANSHU_HANDLER") -> Any:
    """Import ``ref.module`` from ``code_dir`` and return the object ``ref.attribute`` names."""
    if code_dir not in sys.path:
        sys.path.insert(0, code_dir)
    target: Any = _import(ref.module, code_dir)
    for part in ref.attribute.split("."):
        if not hasattr(target, part):
            raise HandlerNotFound(
                f"module '{ref.module}' has no attribute '{ref.attribute}'",
                f"define '{ref.attribute}' in {ref.module.replace('.', '/')}.py "
                f"or correct {variable}",
            )
        target = getattr(target, part)
    if not callable(target):
        raise HandlerNotCallable(
            f"'{ref}' is a {type(target).__name__}, not a function",
            f"point {variable} at a function (def handler(event, context)) or an app object",
        )
    return target


def is_async_callable(target: Callable[..., Any]) -> bool:
    if inspect.iscoroutinefunction(target):
        return True
    dunder_call = getattr(target, "__call__", None)  # noqa: B004 - objects with async __call__
    return dunder_call is not None and inspect.iscoroutinefunction(dunder_call)
