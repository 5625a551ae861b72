"""Versions and aliases as the gateway reads them from the raw objects (issue 28).

Adapters over the shared contract (hanshu_api.versions), kept in one place: the
FunctionVersion object, a Function's ``spec.aliases`` and ``status.aliases``, and a
Trigger's ``functionRef.version`` / ``functionRef.alias``. Each is read leniently: the
operator validates these and reports problems on the objects; the gateway serves what it
can read and logs the rest.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hanshu_api.versions import (
    AliasRouting,
    FunctionTarget,
    effective_routing,
    parse_aliases,
    parse_function_target,
)

log = logging.getLogger("hanshu.gateway")


@dataclass(frozen=True, slots=True)
class PublishedVersion:
    """A FunctionVersion: Function ``function``'s version ``version``, ``template`` the
    Function's spec as it was when published."""

    namespace: str
    function: str
    version: int
    template: Mapping[str, Any]


def parse_function_version(obj: Mapping[str, Any]) -> PublishedVersion | None:
    """A FunctionVersion object's spec {function, version, digest, template}; None (and a
    line in the log) when it cannot be read."""
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    function, version, template = spec.get("function"), spec.get("version"), spec.get("template")
    if (
        not isinstance(function, str)
        or not function
        or isinstance(version, bool)
        or not isinstance(version, int)
        or version < 1
        or not isinstance(template, Mapping)
    ):
        log.warning(
            "ignoring FunctionVersion %s/%s: its spec needs function, version and template",
            meta.get("namespace"),
            meta.get("name"),
        )
        return None
    return PublishedVersion(str(meta.get("namespace", "")), function, version, template)


def function_routing(obj: Mapping[str, Any]) -> dict[str, AliasRouting]:
    """A Function object's aliases as they route now: ``effective_routing`` of its
    ``spec.aliases`` and ``status.aliases`` (a canary's). Aliases that cannot be read are
    left out (the operator's AliasesValid condition says why)."""
    problems: list[str] = []
    aliases = parse_aliases((obj.get("spec") or {}).get("aliases"), problems)
    if problems:
        meta = obj.get("metadata") or {}
        log.info("Function %s/%s: %s", meta.get("namespace"), meta.get("name"), "; ".join(problems))
    if not aliases:
        return {}
    raw_status = (obj.get("status") or {}).get("aliases")
    status = [entry for entry in raw_status or [] if isinstance(entry, Mapping)]
    return effective_routing(aliases, status)


class TargetInvalid(ValueError):
    """A Trigger's functionRef version or alias that cannot be read: the Trigger is not
    served (never as $LATEST in its place)."""


def trigger_target(obj: Mapping[str, Any]) -> FunctionTarget | None:
    """A Trigger's ``functionRef`` version or alias; None for $LATEST. Raises
    TargetInvalid naming what is wrong."""
    ref = (obj.get("spec") or {}).get("functionRef") or {}
    if not isinstance(ref, Mapping) or ("version" not in ref and "alias" not in ref):
        return None
    problems: list[str] = []
    target = parse_function_target(str(ref.get("name", "")), ref, problems)
    if problems:
        raise TargetInvalid("; ".join(problems))
    return target
