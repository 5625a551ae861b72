"""kopf handlers for published versions (``FunctionVersion``): children while referenced,
retention, and what the Function's status says of its versions and aliases.

A version runs as a Deployment, Service and code ConfigMap named ``version_key(function,
N)``, owned by its FunctionVersion (itself owned by the Function, so deleting either
collects them), only while something references it: an alias in the Function's
``spec.aliases`` or a Trigger's ``functionRef.version``. Decisions are in
``version_plan``; this is the I/O edge.

One sync per Function at a time (a lock per Function), run when the Function's spec
changes, a FunctionVersion appears or goes, a Trigger starts or stops naming a version, or
a version's Deployment changes (then only the status is recomputed). Cost: a LIST of the
namespace's FunctionVersions by label, a GET of each version's Deployment, its applies
while referenced, one status write.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, cast

import kopf
from hanshu_api import API_VERSION, FUNCTION_PLURAL, GROUP, VERSION
from hanshu_api.keyed_locks import KeyedLocks
from hanshu_api.kube import path_for
from hanshu_api.models import SpecInvalid, parse_function_spec
from hanshu_api.platform import FunctionKey
from hanshu_api.versions import (
    DEFAULT_KEEP_UNREFERENCED,
    FUNCTION_VERSION_KIND,
    FUNCTION_VERSION_PLURAL,
    LABEL_VERSION,
    LABEL_VERSION_OF,
    Alias,
    FunctionTarget,
    effective_routing,
    parse_aliases,
    version_key,
)

from .builders import VersionOf, code_config_map_name
from .conditions import Condition
from .function_status import replica_counts
from .functions import NETWORKING, _children, _remove_child, write_function_status
from .references import resolve_code
from .state import OperatorState, operator_state
from .trigger_status import write_trigger_status
from .version_plan import (
    ALIASES_VALID,
    CANARY_HEALTHY,
    alias_summary,
    aliases_condition,
    canary_condition,
    referenced_versions,
    retired,
    traffic_shares,
    version_entries,
)

logger = logging.getLogger("hanshu.operator")

_LOCKS: KeyedLocks[FunctionKey] = KeyedLocks()


def version_number(item: Mapping[str, Any], function: str) -> int | None:
    """A FunctionVersion's number, if it is a version of ``function``."""
    spec = item.get("spec") or {}
    number = spec.get("version")
    if spec.get("function") != function or not isinstance(number, int) or number < 1:
        return None
    return number


async def list_versions(
    state: OperatorState, namespace: str, function: str
) -> dict[int, dict[str, Any]]:
    """number -> FunctionVersion, of one Function. By spec, not by label: one made with
    kubectl may have no labels yet (the sync adds them). Retention bounds the list."""
    items = await state.kube.list_items(path_for(API_VERSION, FUNCTION_VERSION_PLURAL, namespace))
    found: dict[int, dict[str, Any]] = {}
    for item in items:
        number = version_number(item, function)
        if number is not None and not (item.get("metadata") or {}).get("deletionTimestamp"):
            # Owner of the version's children: an owner reference needs both (a list's
            # items may come without them).
            item.setdefault("apiVersion", API_VERSION)
            item.setdefault("kind", FUNCTION_VERSION_KIND)
            found[number] = item
    return found


def _aliases(function: Mapping[str, Any]) -> tuple[Alias, ...]:
    problems: list[str] = []  # an invalid spec is the Function reconcile's to report
    aliases = parse_aliases((function.get("spec") or {}).get("aliases"), problems)
    return () if problems else aliases


async def sync_versions(
    state: OperatorState,
    namespace: str,
    function_name: str,
    *,
    body: kopf.Body | None = None,
    children: bool = True,
) -> None:
    """Bring the Function's versions to what references them, and say so in its status.
    ``children=False``: only the status (a version's Deployment changed)."""
    async with _LOCKS.held((namespace, function_name)):
        path = path_for(API_VERSION, FUNCTION_PLURAL, namespace, function_name)
        function = await state.kube.get(path)
        if function is None:
            return
        events_on = body if body is not None else kopf.Body(cast(kopf.RawBody, function))
        aliases = _aliases(function)
        triggers = state.triggers.targets(namespace, function_name)
        if body is not None and not _uses_versions(function, aliases, triggers):
            # A Function's own reconcile, and it never had a version: no LIST (a start-up
            # with thousands of Functions costs nothing more). A publish syncs by its event.
            return
        published = await list_versions(state, namespace, function_name)
        referrers = referenced_versions(aliases, triggers)
        running: dict[int, dict[str, int]] = {}
        for number, item in sorted(published.items()):
            key = version_key(function_name, number)
            if number not in referrers:
                if children:
                    await _retire_children(state, events_on, key, item)
                continue
            deployment = (
                await _apply_version(state, events_on, function, item, number)
                if children
                else await state.kube.get(path_for("apps/v1", "deployments", namespace, key))
            )
            if deployment is not None:
                running[number] = replica_counts(deployment)
        if children:
            for number in retired(published, referrers, DEFAULT_KEEP_UNREFERENCED):
                await _delete_version(state, events_on, published.pop(number))
        status = function.get("status") or {}
        routing = effective_routing(aliases, status.get("aliases") or [])
        shares = traffic_shares(routing, triggers)
        await write_function_status(
            state,
            namespace,
            function_name,
            version_verdicts={
                ALIASES_VALID: aliases_condition(aliases, set(published)),
                CANARY_HEALTHY: canary_condition(status.get("canaries")),
            },
            latestVersion=max(published, default=None),
            aliasSummary=alias_summary(routing),
            versions=version_entries(
                published, running, shares, latest_replicas=_latest_counts(status)
            ),
        )
        for number, item in published.items():
            await _write_version_status(state, item, referrers.get(number, []), running.get(number))
        if children:
            await _rebind_alias_triggers(state, namespace, function, triggers)


def _uses_versions(
    function: Mapping[str, Any],
    aliases: Sequence[Alias],
    triggers: Sequence[tuple[str, FunctionTarget]],
) -> bool:
    """Whether anything says this Function has (or had) published versions."""
    status = function.get("status") or {}
    return bool(
        aliases
        or any(target.version is not None for _, target in triggers)
        or status.get("latestVersion") is not None
        or status.get("versions")
        or any(
            c.get("type") in (ALIASES_VALID, CANARY_HEALTHY) for c in status.get("conditions") or []
        )
    )


async def _rebind_alias_triggers(
    state: OperatorState,
    namespace: str,
    function: Mapping[str, Any],
    triggers: Sequence[tuple[str, FunctionTarget]],
) -> None:
    """The Function's aliases changed, maybe: its alias Triggers say whether theirs exists
    (a GET each, a write only when the verdict moved)."""
    # Imported here: importing the triggers module registers its kopf handlers, and they
    # keep their place after the route index's (handlers.py's order).
    from .triggers import binding

    for name, target in triggers:
        if target.alias is not None:
            bound = binding(target, namespace, function)
            await write_trigger_status(state, namespace, name, state.triggers.routes, bound=bound)


def _latest_counts(status: Mapping[str, Any]) -> dict[str, int]:
    return {
        "replicas": int(status.get("replicas") or 0),
        "readyReplicas": int(status.get("readyReplicas") or 0),
    }


async def _apply_version(
    state: OperatorState,
    body: kopf.Body,
    function: Mapping[str, Any],
    item: Mapping[str, Any],
    number: int,
) -> dict[str, Any] | None:
    """The version's children, from its snapshot; None when the snapshot cannot run."""
    meta = function["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    template = (item.get("spec") or {}).get("template") or {}
    try:
        spec = parse_function_spec(template)
    except SpecInvalid as error:
        kopf.warn(body, reason="InvalidVersion", message=f"version {number}: {error}")
        return None
    referenced_code, missing = await resolve_code(state.kube, namespace, spec)
    if missing is not None:
        kopf.warn(body, reason=missing.reason, message=f"version {number}: {missing.message}")
        return None
    await _adopt(state, function, item)
    return await _children(
        state,
        body,
        version_key(name, number),
        namespace,
        spec,
        referenced_code,
        number,
        version_of=VersionOf(name, number),
        owner=item,
    )


async def _adopt(
    state: OperatorState, function: Mapping[str, Any], item: Mapping[str, Any]
) -> None:
    """A FunctionVersion created by hand (not by ``hanshu publish``) gets its Function as
    owner and its labels, so it goes with the Function and is found by label."""
    meta = item.get("metadata") or {}
    uid = function["metadata"].get("uid")
    owned = any(ref.get("uid") == uid for ref in meta.get("ownerReferences") or [])
    spec = item.get("spec") or {}
    wanted = {LABEL_VERSION_OF: spec.get("function"), LABEL_VERSION: str(spec.get("version"))}
    labelled = all((meta.get("labels") or {}).get(k) == v for k, v in wanted.items())
    if owned and labelled:
        return
    patch: dict[str, Any] = {"metadata": {"labels": wanted}}
    if not owned:
        patch["metadata"]["ownerReferences"] = [
            *(meta.get("ownerReferences") or []),
            owner_reference(function),
        ]
    await state.kube.merge_patch(
        path_for(API_VERSION, FUNCTION_VERSION_PLURAL, meta["namespace"], meta["name"]), patch
    )


def owner_reference(function: Mapping[str, Any]) -> dict[str, Any]:
    meta = function["metadata"]
    return {
        "apiVersion": API_VERSION,
        "kind": "Function",
        "name": meta["name"],
        "uid": meta["uid"],
        "blockOwnerDeletion": True,
    }


async def _retire_children(
    state: OperatorState, body: kopf.Body, key: str, item: Mapping[str, Any]
) -> None:
    """A version nothing references holds no Deployment, Service or ConfigMap."""
    why = "no alias or Trigger references this version"
    for api_version, plural, name in (
        ("apps/v1", "deployments", key),
        ("v1", "services", key),
        ("v1", "configmaps", code_config_map_name(key)),
        (NETWORKING, "networkpolicies", key),
    ):
        await _remove_child(state.kube, body, api_version, plural, name, item, why)


async def _delete_version(state: OperatorState, body: kopf.Body, item: Mapping[str, Any]) -> None:
    meta = item["metadata"]
    await state.kube.delete(
        path_for(API_VERSION, FUNCTION_VERSION_PLURAL, meta["namespace"], meta["name"])
    )
    number = (item.get("spec") or {}).get("version")
    kopf.info(
        body,
        reason="VersionRetired",
        message=f"Deleted {FUNCTION_VERSION_KIND} {meta['name']} (version {number}): "
        f"unreferenced, and older than the newest {DEFAULT_KEEP_UNREFERENCED} unreferenced",
    )


async def _write_version_status(
    state: OperatorState,
    item: Mapping[str, Any],
    referrers: Sequence[str],
    counts: Mapping[str, int] | None,
) -> None:
    wanted = {
        "referencedBy": ", ".join(referrers),
        "replicas": int((counts or {}).get("replicas", 0)),
        "readyReplicas": int((counts or {}).get("readyReplicas", 0)),
    }
    current = item.get("status") or {}
    if all(current.get(k) == v for k, v in wanted.items()):
        return
    meta = item["metadata"]
    path = path_for(API_VERSION, FUNCTION_VERSION_PLURAL, meta["namespace"], meta["name"], "status")
    await state.kube.merge_patch(path, {"status": wanted})


async def resync_versions_called(
    state: OperatorState,
    namespace: str,
    before: FunctionTarget | None,
    after: FunctionTarget | None,
) -> None:
    """A Trigger started or stopped naming a version: that Function's versions change."""
    if before == after:
        return
    functions = {
        target.function
        for target in (before, after)
        if target is not None and target.version is not None
    }
    async with state.reconcile_slots:  # (``bounded``)
        for function in sorted(functions):
            await sync_versions(state, namespace, function)


@kopf.on.event(GROUP, VERSION, FUNCTION_VERSION_PLURAL)
async def follow_function_version(
    type: str | None,
    namespace: str | None,
    spec: kopf.Spec,
    memo: kopf.Memo,
    **_: Any,
) -> None:
    """A version published or deleted: sync its Function. Its own status writes (MODIFIED)
    change nothing a sync decides by; at start-up (type None) the Function's resume syncs."""
    function = spec.get("function")
    if type not in ("ADDED", "DELETED") or namespace is None or not isinstance(function, str):
        return
    state = operator_state(memo)
    async with state.reconcile_slots:  # (``bounded``)
        await sync_versions(state, namespace, function)


@kopf.on.event(GROUP, VERSION, FUNCTION_PLURAL)
async def follow_canaries(
    type: str | None,
    name: str,
    namespace: str | None,
    status: kopf.Status,
    memo: kopf.Memo,
    **_: Any,
) -> None:
    """The canary controller wrote ``status.canaries`` or ``status.aliases``: mirror a
    rollback into CanaryHealthy and the aliases' effective routing into the summary. Most
    events (the operator's own writes) compare equal and cost nothing."""
    if type in (None, "DELETED") or namespace is None:
        return
    wanted = canary_condition(status.get("canaries"))
    current = next(
        (c for c in status.get("conditions") or [] if c.get("type") == CANARY_HEALTHY), None
    )
    if _same(wanted, current) and not _routing_moved(status):
        return
    state = operator_state(memo)
    async with state.reconcile_slots:  # (``bounded``)
        await sync_versions(state, namespace, name, children=False)


def _same(wanted: Condition | None, current: Mapping[str, Any] | None) -> bool:
    if wanted is None or current is None:
        return wanted is None and current is None
    return (wanted.status, wanted.reason, wanted.message) == (
        current.get("status"),
        current.get("reason"),
        current.get("message"),
    )


def _routing_moved(status: Mapping[str, Any]) -> bool:
    """Whether status.aliases routes differently from what the summary says."""
    entries = status.get("aliases") or []
    if not entries:
        return False
    summary = str(status.get("aliasSummary") or "")
    for entry in entries:
        if not isinstance(entry, Mapping):
            continue
        name, version = entry.get("name"), entry.get("version")
        additional, weight = entry.get("additionalVersion"), entry.get("additionalWeight")
        text = (
            f"{name}={version},{additional}@{weight}%"
            if additional is not None and weight
            else f"{name}={version}"
        )
        if text not in summary.split(" "):
            return True
    return False
