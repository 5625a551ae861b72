"""Versions and aliases as the gateway reads them from the raw objects (issue 28).

Over the shared contract (hanshu_api.versions): the FunctionVersion object, and a
Function's ``status.aliases`` beside its parsed ``spec.aliases`` (a Trigger's
``functionRef.version`` / ``alias`` is TriggerSpec.target_ref). Read leniently: the
operator validates these and reports problems on the objects; the gateway serves what it
can read and logs the rest.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hanshu_api.versions import Alias, AliasRouting, effective_routing

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


def function_routing(aliases: Sequence[Alias], obj: Mapping[str, Any]) -> dict[str, AliasRouting]:
    """A Function's aliases (its parsed ``spec.aliases``) as they route now:
    ``effective_routing`` of them and the object's ``status.aliases`` (a canary's)."""
    if not aliases:
        return {}
    raw_status = (obj.get("status") or {}).get("aliases")
    status = [entry for entry in raw_status or [] if isinstance(entry, Mapping)]
    return effective_routing(aliases, status)
