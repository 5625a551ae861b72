"""Which Function entry serves a route's request: $LATEST, one published version, or the
version an alias picks for this request (issue 28; the contract is hanshu_api.versions).

An alias's effective routing is worked out once per change of its Function
(``AliasChoice.of``): a request through it costs one dictionary lookup, and only a split
alias a draw: the caller's sticky value's (``STICKY_HEADER``, else the ``STICKY_COOKIE``
cookie), else the alias's next step of a golden-ratio sequence from a random start
(``AliasChoice.next_draw``), so any run of consecutive requests, a burst of ten included,
is split by the weights rather than by chance (docs/architecture.md "Measured choices").

A route whose Function, version or alias does not exist is refused as a Function that does
not exist is: 503 for a synchronous call (it may appear:
a version is served from the moment its FunctionVersion is seen), 404 for an async one
(never stored for nothing), with a JSON body naming the alias and the version.

The platform's own callers (schedules, streams, destinations) name a version or an alias
on the internal port with ``?version=N`` / ``?alias=NAME`` (``platform_target``).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from hanshu_api.invocations import SYNC, invocation_type_of
from hanshu_api.platform import FunctionKey
from hanshu_api.versions import (
    STICKY_COOKIE,
    STICKY_HEADER,
    AliasRouting,
    pick_version,
    sticky_draw,
    version_key,
)

from .faults import BadRequest, GatewayFault, NotFound, Unavailable
from .routes import Route

if TYPE_CHECKING:
    from .catalog import FunctionEntry

# (namespace, function, alias)
AliasKey = tuple[str, str, str]

# (sqrt(5) - 1) / 2: adding it modulo 1 gives the most even spread of draws over [0, 1) that
# a sequence can have, for every weight at once, without ever repeating itself.
GOLDEN_STEP = 0.6180339887498949


@dataclass(slots=True, eq=False)
class AliasChoice:
    """One alias's routing with the keys of its versions worked out, and where its
    sequence of draws stands."""

    routing: AliasRouting
    keys: Mapping[int, FunctionKey]  # version -> its version_key
    split: bool  # whether a second version takes a share: only then is a draw needed
    # A random start, so gateway replicas (and an alias rebuilt on a change) do not step in
    # lock-step; each draw then moves on by GOLDEN_STEP.
    last_draw: float = field(default_factory=random.random, repr=False)

    @classmethod
    def of(cls, namespace: str, function: str, routing: AliasRouting) -> AliasChoice:
        versions = [routing.version]
        split = routing.additional_version is not None and routing.additional_weight > 0
        if split and routing.additional_version is not None:
            versions.append(routing.additional_version)
        keys = {n: (namespace, version_key(function, n)) for n in versions}
        return cls(routing, keys, split)

    def pick(self, headers: Mapping[str, str]) -> int:
        """The version this request goes to."""
        if not self.split:
            return self.routing.version
        sticky = headers.get(STICKY_HEADER) or sticky_cookie(headers.get("Cookie"))
        draw = sticky_draw(sticky, self.routing.alias) if sticky else self.next_draw()
        return pick_version(self.routing, draw)

    def next_draw(self) -> float:
        """The next draw in [0, 1) for a caller without a sticky value. Independent random
        draws split a burst of ten 50/50 requests 7/3 or worse one time in three, queueing
        it on one version's replicas while the other's idle; these split it 5/5 or 6/4, and
        any 2,000 requests within 3 of the weight. The latency gained on this VM is within
        its noise (docs/architecture.md "Measured choices"); the pick costs 0.06 µs more."""
        draw = self.last_draw + GOLDEN_STEP
        self.last_draw = draw = draw - 1.0 if draw >= 1.0 else draw
        return draw


def sticky_cookie(cookie_header: str | None) -> str | None:
    """The ``STICKY_COOKIE`` cookie's value from a Cookie header; None without one."""
    if not cookie_header or STICKY_COOKIE not in cookie_header:
        return None
    for pair in cookie_header.split(";"):
        name, _, value = pair.strip().partition("=")
        if name == STICKY_COOKIE:
            return value.strip('"') or None
    return None


def target_entry(
    route: Route,
    functions: Mapping[FunctionKey, FunctionEntry],
    aliases: Mapping[AliasKey, AliasChoice],
    headers: Mapping[str, str],
) -> FunctionEntry:
    """The entry serving this request of ``route``, or the fault refusing it: as for a
    missing Function, 503 for a synchronous caller (it may appear), 404 for an async call
    (never stored for a target that is not there)."""
    if route.key is not None:  # $LATEST or one version: worked out with the route
        entry = functions.get(route.key)
        if entry is not None:
            return entry
    elif route.alias_key is not None:
        choice = aliases.get(route.alias_key)
        if choice is not None:
            picked = choice.pick(headers)  # one draw per request, even when refused
            entry = functions.get(choice.keys[picked])
            if entry is not None:
                return entry
            raise _refused(_unpublished(route.function, route.alias_key[2], picked), headers)
    try:
        return resolve(
            route.namespace, route.function, route.version, route.alias, functions, aliases, headers
        )
    except NotFound as missing:
        raise _refused(missing, headers) from None


def _refused(missing: NotFound, headers: Mapping[str, str]) -> GatewayFault:
    if invocation_type_of(headers) in (SYNC, None):
        return Unavailable(missing.message, error_type=missing.error_type)
    return missing


def _unpublished(function: str, alias: str, version: int) -> NotFound:
    return NotFound(
        f"alias '{alias}' of the Function '{function}' points at version {version}, "
        "which is not published",
        error_type="VersionNotFound",
    )


def resolve(
    namespace: str,
    function: str,
    version: int | None,
    alias: str | None,
    functions: Mapping[FunctionKey, FunctionEntry],
    aliases: Mapping[AliasKey, AliasChoice],
    headers: Mapping[str, str],
) -> FunctionEntry:
    """The entry of a Function's $LATEST, of one version, or of the version its alias picks
    for this call; NotFound naming what does not exist."""
    if alias is None:
        entry = functions.get((namespace, version_key(function, version)))
        if entry is not None:
            return entry
        if version is None:
            raise NotFound(
                f"the Function '{function}' does not exist",
                error_type="FunctionNotFound",
            )
        raise NotFound(
            f"version {version} of the Function '{function}' is not published "
            f"(hanshu versions {function} lists the published ones)",
            error_type="VersionNotFound",
        )
    choice = aliases.get((namespace, function, alias))
    if choice is None:
        raise NotFound(
            f"the Function '{function}' has no alias '{alias}' (or does not exist)",
            error_type="AliasNotFound",
        )
    picked = choice.pick(headers)
    entry = functions.get(choice.keys[picked])
    if entry is None:
        raise _unpublished(function, alias, picked)
    return entry


def platform_target(query: Mapping[str, str]) -> tuple[int | None, str | None]:
    """The version or alias a platform caller names on the internal port (``?version=2``
    or ``?alias=live``, beside the Function in the path); BadRequest naming what is wrong."""
    version_text, alias = query.get("version"), query.get("alias")
    if version_text is not None and alias is not None:
        raise BadRequest("name a version or an alias, not both", error_type="InvalidTarget")
    if version_text is None:
        return None, alias or None
    # ASCII digits only, and a bounded number of them: str.isdigit() admits '²' (which
    # int() refuses), and int() refuses more than 4300 digits; either was a 500.
    if (
        not (version_text.isascii() and version_text.isdigit())
        or len(version_text) > 18
        or int(version_text) < 1
    ):
        raise BadRequest(
            f"version must be a version number >= 1 (e.g. ?version=2), got {version_text!r}",
            error_type="InvalidTarget",
        )
    return int(version_text), None


__all__ = ["AliasChoice", "AliasKey", "platform_target", "resolve", "sticky_cookie", "target_entry"]
