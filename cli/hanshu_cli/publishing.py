"""Versions and aliases as the CLI changes them, decided by pure functions (docs/versions.md).

Publishing creates the next ``FunctionVersion`` (an immutable snapshot of the Function's
spec), unless the spec is unchanged since the newest one: then that one is the answer.
``alias set`` and ``rollback`` compute the Function's new ``spec.aliases`` list, which the
command writes with one JSON merge patch (the whole list: an alias is a list entry).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hanshu_api import API_VERSION
from hanshu_api.versions import (
    FUNCTION_VERSION_KIND,
    LABEL_VERSION,
    LABEL_VERSION_OF,
    MAX_WEIGHT,
    MIN_WEIGHT,
    parse_aliases,
    spec_digest,
    version_object_name,
)

from .errors import CliError

WEIGHT_PATTERN = re.compile(r"^(\d+)=(\d+)%?$")


@dataclass(frozen=True, slots=True)
class Published:
    """A FunctionVersion as the CLI shows it."""

    number: int
    digest: str
    created: str
    description: str
    referenced_by: str
    ready_replicas: int


def published(items: Sequence[Mapping[str, Any]], function: str) -> list[Published]:
    """The Function's versions, oldest first (others' FunctionVersions left out)."""
    found = []
    for item in items:
        spec = item.get("spec") or {}
        number = spec.get("version")
        if spec.get("function") != function or not isinstance(number, int):
            continue
        meta = item.get("metadata") or {}
        status = item.get("status") or {}
        found.append(
            Published(
                number,
                str(spec.get("digest") or ""),
                str(meta.get("creationTimestamp") or ""),
                str(spec.get("description") or ""),
                str(status.get("referencedBy") or ""),
                int(status.get("readyReplicas") or 0),
            )
        )
    return sorted(found, key=lambda version: version.number)


def snapshot(function: Mapping[str, Any]) -> dict[str, Any]:
    """What a version keeps of the Function's spec: all of it but its aliases."""
    spec = copy.deepcopy(dict(function.get("spec") or {}))
    spec.pop("aliases", None)
    return spec


def unchanged_version(function: Mapping[str, Any], versions: Sequence[Published]) -> int | None:
    """The newest version, if the Function's spec is still what it snapshotted."""
    if not versions:
        return None
    newest = versions[-1]
    return newest.number if newest.digest == spec_digest(snapshot(function)) else None


def version_manifest(
    function: Mapping[str, Any], number: int, description: str | None = None
) -> dict[str, Any]:
    """The FunctionVersion that publishes ``function``'s spec as ``number``, owned by it."""
    meta = function["metadata"]
    name = meta["name"]
    template = snapshot(function)
    spec: dict[str, Any] = {
        "function": name,
        "version": number,
        "digest": spec_digest(template),
        "template": template,
    }
    if description:
        spec["description"] = description
    owner = {
        "apiVersion": API_VERSION,
        "kind": "Function",
        "name": name,
        "uid": meta["uid"],
        "blockOwnerDeletion": True,
    }
    return {
        "apiVersion": API_VERSION,
        "kind": FUNCTION_VERSION_KIND,
        "metadata": {
            "name": version_object_name(name, number),
            "namespace": meta.get("namespace"),
            "labels": {LABEL_VERSION_OF: name, LABEL_VERSION: str(number)},
            "ownerReferences": [owner],
        },
        "spec": spec,
    }


def parse_weight(raw: str) -> tuple[int, int]:
    """``--weight M=P%``: (version M, P percent)."""
    match = WEIGHT_PATTERN.match(raw.strip())
    if match is None:
        raise CliError(f"--weight {raw!r} must be VERSION=PERCENT%, e.g. --weight 3=10%")
    return int(match.group(1)), int(match.group(2))


def set_alias(
    aliases: Sequence[Mapping[str, Any]],
    alias: str,
    version: int,
    weight: tuple[int, int] | None,
    numbers: set[int],
) -> list[dict[str, Any]]:
    """``spec.aliases`` with ``alias`` pointing at ``version`` (and ``weight``'s share to a
    second version); refused: a missing version, a weight outside 1-99, M == N."""
    entry: dict[str, Any] = {"name": alias, "version": version}
    wanted = [version]
    if weight is not None:
        other, percent = weight
        if other == version:
            raise CliError(
                f"--weight {other}={percent}% names version {version} itself; the second "
                "version must be a different one"
            )
        if not MIN_WEIGHT <= percent <= MAX_WEIGHT:
            raise CliError(
                f"--weight {other}={percent}%: the share must be {MIN_WEIGHT}-{MAX_WEIGHT}% "
                f"(100% is --version {other})"
            )
        entry["additionalVersion"], entry["additionalWeight"] = other, percent
        wanted.append(other)
    for number in wanted:
        if number not in numbers:
            listed = ", ".join(map(str, sorted(numbers))) or "none"
            raise CliError(
                f"version {number} is not published (published: {listed}); "
                "hanshu publish makes the next one"
            )
    updated = [dict(a) for a in aliases if a.get("name") != alias]
    updated.append(entry)
    _check(updated)
    return sorted(updated, key=lambda a: str(a.get("name")))


def rollback_alias(aliases: Sequence[Mapping[str, Any]], alias: str) -> list[dict[str, Any]]:
    """All of ``alias``'s traffic back on its ``version``: the additional version (and a
    canary shifting traffic to it) is dropped."""
    found = next((a for a in aliases if a.get("name") == alias), None)
    if found is None:
        names = ", ".join(sorted(str(a.get("name")) for a in aliases)) or "none"
        raise CliError(f"the Function has no alias {alias!r} (aliases: {names})")
    if found.get("additionalVersion") is None:
        raise CliError(
            f"alias {alias!r} sends everything to version {found.get('version')} already: "
            "nothing to roll back (hanshu alias set moves it)"
        )
    kept = {"name": alias, "version": found["version"]}
    return [kept if a.get("name") == alias else dict(a) for a in aliases]


def _check(aliases: list[dict[str, Any]]) -> None:
    problems: list[str] = []
    parse_aliases(aliases, problems)
    if problems:
        raise CliError("; ".join(problems))
