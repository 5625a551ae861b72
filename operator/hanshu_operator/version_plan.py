"""What a Function's published versions need, decided by pure functions (docs/versions.md).

From the Function's aliases (spec and effective routing), the Triggers that name a version
and the FunctionVersion objects: which versions run (children only while referenced),
which are retired (beyond the newest ``keep`` unreferenced ones, never a referenced one),
what the Function's status says of them, and its AliasesValid and CanaryHealthy conditions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from hanshu_api.versions import (
    LATEST,
    Alias,
    AliasRouting,
    FunctionTarget,
    missing_versions,
)

from .conditions import FALSE, TRUE, Condition

ALIASES_VALID = "AliasesValid"
CANARY_HEALTHY = "CanaryHealthy"
# The conditions the versions' sync owns (the rest are the Function reconcile's).
VERSION_CONDITIONS = (ALIASES_VALID, CANARY_HEALTHY)

Referrers = dict[int, list[str]]


def referenced_versions(
    aliases: Sequence[Alias], triggers: Iterable[tuple[str, FunctionTarget]]
) -> Referrers:
    """version -> what references it ('alias live', 'trigger web'), in a stable order."""
    found: Referrers = {}
    for alias in aliases:
        for number in alias.versions():
            found.setdefault(number, []).append(f"alias {alias.name}")
    for trigger, target in sorted(triggers, key=lambda pair: pair[0]):
        if target.version is not None:
            found.setdefault(target.version, []).append(f"trigger {trigger}")
    return found


def retired(published: Iterable[int], referenced: Iterable[int], keep: int) -> list[int]:
    """The versions to delete: unreferenced ones beyond the newest ``keep`` of them."""
    held = set(referenced)
    unreferenced = sorted((n for n in set(published) if n not in held), reverse=True)
    return sorted(unreferenced[max(0, keep) :])


def traffic_shares(
    routing: Mapping[str, AliasRouting], triggers: Iterable[tuple[str, FunctionTarget]]
) -> dict[str, list[str]]:
    """version ('1', '2', or '$LATEST') -> where its requests come from, e.g. 'live 90%'."""
    shares: dict[str, list[str]] = {}
    for name in sorted(routing):
        current = routing[name]
        split = current.additional_version is not None and current.additional_weight > 0
        if not split:
            shares.setdefault(str(current.version), []).append(f"{name} 100%")
            continue
        weight = current.additional_weight
        if weight < 100:
            shares.setdefault(str(current.version), []).append(f"{name} {100 - weight}%")
        shares.setdefault(str(current.additional_version), []).append(f"{name} {weight}%")
    for trigger, target in sorted(triggers, key=lambda pair: pair[0]):
        if target.alias is not None:
            continue  # its traffic is the alias's, counted above
        version = LATEST if target.version is None else str(target.version)
        shares.setdefault(version, []).append(f"trigger {trigger}")
    return shares


def alias_summary(routing: Mapping[str, AliasRouting]) -> str:
    """The printer column: 'live=1,2@10% beta=3' (version 1, 10% to version 2)."""
    parts = []
    for name in sorted(routing):
        current = routing[name]
        if current.additional_version is not None and current.additional_weight > 0:
            parts.append(
                f"{name}={current.version},{current.additional_version}"
                f"@{current.additional_weight}%"
            )
        else:
            parts.append(f"{name}={current.version}")
    return " ".join(parts)


def version_entries(
    published: Iterable[int],
    running: Mapping[int, Mapping[str, int]],
    shares: Mapping[str, Sequence[str]],
    latest_replicas: Mapping[str, int] | None = None,
) -> list[dict[str, Any]]:
    """``status.versions``: each published version that runs or takes traffic, newest first,
    and $LATEST when a Trigger calls it."""
    entries: list[dict[str, Any]] = []
    if LATEST in shares and latest_replicas is not None:
        entries.append(
            {
                "version": LATEST,
                "replicas": int(latest_replicas.get("replicas", 0)),
                "readyReplicas": int(latest_replicas.get("readyReplicas", 0)),
                "trafficShare": ", ".join(shares[LATEST]),
            }
        )
    for number in sorted(set(published), reverse=True):
        share = shares.get(str(number))
        if share is None and number not in running:
            continue
        counts = running.get(number, {})
        entries.append(
            {
                "version": str(number),
                "replicas": int(counts.get("replicas", 0)),
                "readyReplicas": int(counts.get("readyReplicas", 0)),
                "trafficShare": ", ".join(share or ["none"]),
            }
        )
    return entries


def aliases_condition(aliases: Sequence[Alias], published: set[int]) -> Condition | None:
    """AliasesValid: False naming each alias that points at a version not published (or
    deleted); None for a Function without aliases (no condition at all)."""
    if not aliases:
        return None
    missing = missing_versions(aliases, published)
    if missing:
        return Condition(
            ALIASES_VALID,
            FALSE,
            "VersionNotPublished",
            "; ".join(missing)
            + ": requests the alias sends there are refused (503) until it is published "
            "(hanshu publish) or the alias is moved (hanshu alias set)",
        )
    names = ", ".join(sorted(alias.name for alias in aliases))
    return Condition(
        ALIASES_VALID, TRUE, "Valid", f"every alias points at a published version: {names}"
    )


def canary_condition(canaries: object) -> Condition | None:
    """CanaryHealthy, mirrored from ``status.canaries`` (the canary controller's): False
    while any canary's phase is RolledBack, naming it and the controller's figures."""
    if not isinstance(canaries, list) or not canaries:
        return None
    rolled_back = [
        entry
        for entry in canaries
        if isinstance(entry, Mapping) and entry.get("phase") == "RolledBack"
    ]
    if rolled_back:
        message = "; ".join(
            f"alias {entry.get('name')!r}: {entry.get('message') or 'rolled back'}"
            for entry in rolled_back
        )
        return Condition(CANARY_HEALTHY, FALSE, "RolledBack", message)
    phases = ", ".join(
        f"{entry.get('name')} {entry.get('phase') or 'Progressing'}"
        for entry in canaries
        if isinstance(entry, Mapping)
    )
    return Condition(CANARY_HEALTHY, TRUE, "Healthy", phases or "no canary has rolled back")
