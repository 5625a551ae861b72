"""The canary controller: the I/O around ``canary.decide_canary``, in the leader only.

In: each Function's ``spec.aliases`` and status as the catalog's watch sees them
(``on_function``), and the outcome figures of every stats report the leader takes
(``ingest``), summed per FunctionKey until the next look. A canary judges its new version's
key, ``(namespace, version_key(function, additionalVersion))``.

Out, per docs/versions.md ("Status fields and who writes them"): ``status.aliases`` (the
effective routing of aliases with a canary, ``AliasRouting.to_status``) and
``status.canaries`` (each canary's phase, sentence and figures), both lists written whole in
one merge patch of the status subresource, which this controller alone writes; a Warning
Event ``CanaryRolledBack`` naming the threshold crossed and the figures (the operator
derives the ``CanaryHealthy`` condition from ``status.canaries``); Normal Events for the
other steps.

A new leader carries on from ``status.canaries``: the phase and step written for the
alias's spec as it is (a finished canary stays finished; a running one restarts its step's
interval, as the old leader's figures went with it).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hanshu_api import API_VERSION, FUNCTION_PLURAL
from hanshu_api.kube import ApiError, KubeClient, path_for
from hanshu_api.kube_events import post_event, rfc3339
from hanshu_api.platform import FunctionKey
from hanshu_api.stats_report import Outcomes
from hanshu_api.versions import Alias, parse_aliases, version_key

from .canary import (
    Action,
    CanaryDecision,
    CanaryState,
    decide_canary,
    resume,
    routing_of,
    status_entry,
)
from .leadership import AlwaysLeader, Leadership

log = logging.getLogger("hanshu.autoscaler.canary")

COMPONENT = "hanshu-autoscaler"


def canary_aliases(function: Mapping[str, Any]) -> tuple[Alias, ...]:
    """The aliases of a Function's spec that have a canary. A spec whose aliases do not
    parse has none here (the operator reports the problem in the Function's status)."""
    problems: list[str] = []
    aliases = parse_aliases((function.get("spec") or {}).get("aliases"), problems)
    if problems:
        return ()
    return tuple(alias for alias in aliases if alias.canary is not None)


@dataclass
class _Watched:
    """What the watch last showed of one Function with at least one canary."""

    raw: Mapping[str, Any]
    aliases: tuple[Alias, ...]
    status_aliases: list[Any] = field(default_factory=list)
    status_canaries: list[Any] = field(default_factory=list)


class CanaryController:
    def __init__(
        self,
        kube: KubeClient,
        *,
        clock: Callable[[], float] = time.monotonic,
        leadership: Leadership | None = None,
        interval: float = 1.0,
    ) -> None:
        self.kube = kube
        self.clock = clock
        self.leadership: Leadership = leadership or AlwaysLeader()
        self.interval = interval
        self._functions: dict[FunctionKey, _Watched] = {}
        self._states: dict[tuple[FunctionKey, str], CanaryState] = {}
        self._transitions: dict[tuple[FunctionKey, str], str] = {}
        self._windows: dict[FunctionKey, Outcomes] = {}
        self._written: dict[FunctionKey, dict[str, Any]] = {}
        # The keys canaries judge (their new versions'); a report of one wakes a look at
        # once, so a bad version's share goes back within a report, not a report plus a look.
        self._judged: set[FunctionKey] = set()
        self._wake = asyncio.Event()

    # -- in ---------------------------------------------------------------------------------

    def on_function(self, kind: str, function: Mapping[str, Any]) -> None:
        """The catalog's watch: keep Functions that have a canary; forget the others."""
        meta = function.get("metadata") or {}
        key = (str(meta.get("namespace") or ""), str(meta.get("name") or ""))
        aliases = () if kind == "DELETED" else canary_aliases(function)
        status = function.get("status") or {}
        if aliases or status.get("canaries") or status.get("aliases"):
            self._functions[key] = _Watched(
                function,
                aliases,
                list(status.get("aliases") or []),
                list(status.get("canaries") or []),
            )
        else:
            self._functions.pop(key, None)
        if kind == "DELETED":
            self._functions.pop(key, None)
            self._written.pop(key, None)
        names = {alias.name for alias in aliases}
        for state_key in [k for k in self._states if k[0] == key and k[1] not in names]:
            del self._states[state_key]
            self._transitions.pop(state_key, None)
        self._judged = {
            (namespace, version_key(name, alias.additional_version))
            for (namespace, name), watched in self._functions.items()
            for alias in watched.aliases
            if alias.additional_version is not None
        }

    def ingest(self, key: FunctionKey, outcomes: Outcomes) -> None:
        """One reporter's figures for one key, for the window since its previous report."""
        known = self._windows.get(key)
        self._windows[key] = outcomes if known is None else known + outcomes
        if key in self._judged:
            self._wake.set()

    def elected(self) -> None:
        """Leadership begins: carry on from the status, with figures from now on."""
        self._states.clear()
        self._windows.clear()
        self._written.clear()

    # -- the look ---------------------------------------------------------------------------

    async def tick(self) -> None:
        windows, self._windows = self._windows, {}
        if not self.leadership.is_leader():
            return
        for key, watched in list(self._functions.items()):
            try:
                await self._look(key, watched, windows)
            except Exception:  # one Function's failed write must not stop the others
                log.exception("the canaries of %s/%s", *key)

    async def _look(
        self, key: FunctionKey, watched: _Watched, windows: Mapping[FunctionKey, Outcomes]
    ) -> None:
        namespace, name = key
        now = self.clock()
        wall = rfc3339(datetime.datetime.now(datetime.UTC))
        decisions: list[tuple[Alias, CanaryDecision]] = []
        # What this look replaces: put back if the write fails, so that the next look
        # decides (and tells) again rather than keep a verdict nobody was told of.
        before = {k: v for k, v in self._states.items() if k[0] == key}
        transitions = {k: v for k, v in self._transitions.items() if k[0] == key}
        for alias in watched.aliases:
            assert alias.additional_version is not None
            state_key = (key, alias.name)
            state = self._states.get(state_key)
            if state is None:
                entry = next((e for e in watched.status_canaries if _named(e, alias.name)), None)
                state = resume(alias, entry, now)
                if state is not None and isinstance(entry, dict):
                    self._transitions[state_key] = str(entry.get("lastTransitionTime") or wall)
            window = windows.get((namespace, version_key(name, alias.additional_version)))
            decision = decide_canary(state, alias, window or Outcomes(), now)
            self._states[state_key] = decision.state
            if decision.action is not Action.UNCHANGED:
                self._transitions[state_key] = wall
                decisions.append((alias, decision))
        status = {
            "aliases": [
                routing_of(alias, self._states[(key, alias.name)]).to_status()
                for alias in watched.aliases
            ],
            "canaries": [
                status_entry(
                    alias,
                    self._states[(key, alias.name)],
                    self._transitions.get((key, alias.name), wall),
                )
                for alias in watched.aliases
            ],
        }
        if not decisions and _same(status, watched, self._written.get(key)):
            return
        try:
            function = await self._write(key, status)
        except Exception:
            for state_key in [k for k in self._states if k[0] == key]:
                del self._states[state_key]
            self._states.update(before)
            self._transitions.update(transitions)
            for alias in watched.aliases:  # the figures too, for the next look
                judged = (namespace, version_key(name, alias.additional_version))
                if (window := windows.get(judged)) is not None:
                    known = self._windows.get(judged)
                    self._windows[judged] = window if known is None else known + window
            raise
        if function is None:
            return
        self._written[key] = status
        for alias, decision in decisions:
            await self._tell(function, alias, decision)

    async def _write(self, key: FunctionKey, status: dict[str, Any]) -> Mapping[str, Any] | None:
        namespace, name = key
        try:
            return await self.kube.merge_patch(
                path_for(API_VERSION, FUNCTION_PLURAL, namespace, name, "status"),
                {"status": status},
            )
        except ApiError as error:
            if error.status == 404:
                self._functions.pop(key, None)
                return None  # the Function is gone
            raise

    async def _tell(
        self, function: Mapping[str, Any], alias: Alias, decision: CanaryDecision
    ) -> None:
        message = f"alias {alias.name!r}: {decision.message}"
        warning = decision.action is Action.ROLLED_BACK
        (log.warning if warning else log.info)(
            "%s/%s %s", (function.get("metadata") or {}).get("namespace"), message, decision.action
        )
        await post_event(
            self.kube,
            function,
            "Warning" if warning else "Normal",
            str(decision.action),
            message,
            component=COMPONENT,
        )

    async def run(self) -> None:
        """A look every ``interval`` (steps end on time with no traffic), and at once when
        a report brings figures of a version under a canary."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)
            self._wake.clear()
            try:
                await self.tick()
            except Exception:  # one bad look must not stop the controller
                log.exception("canary look failed")


def _named(entry: Any, name: str) -> bool:
    return isinstance(entry, dict) and entry.get("name") == name


def _same(status: Mapping[str, Any], watched: _Watched, written: Mapping[str, Any] | None) -> bool:
    """Nothing to write: the status already says this (as watched, or as last written,
    when the watch has not caught up with our own write yet). The figures of a step in
    progress are written with its next transition, not every second."""
    seen = written or {"aliases": watched.status_aliases, "canaries": watched.status_canaries}
    return bool(_stable(seen) == _stable(status))


def _stable(status: Mapping[str, Any]) -> Any:
    """The status without what changes every look (figures, times)."""
    moving = {"requests", "errorRate", "p99Seconds", "lastTransitionTime"}
    return (
        status.get("aliases"),
        [
            {k: v for k, v in entry.items() if k not in moving}
            for entry in status.get("canaries") or []
            if isinstance(entry, dict)
        ],
    )
