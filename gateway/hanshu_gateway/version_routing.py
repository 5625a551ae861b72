"""Which Function entry serves a route's request: $LATEST, one published version, or the
version an alias picks for this request (issue 28; the contract is hanshu_api.versions).

An alias's effective routing is worked out once per change of its Function
(``AliasChoice.of``): a request through it costs one dictionary lookup, and only a split
alias a draw, random or the caller's sticky value's (``STICKY_HEADER``, else the
``STICKY_COOKIE`` cookie). A route whose Function, version or alias does not exist is
refused as a Function that does not exist is: 503 for a synchronous call (it may appear:
a version is served from the moment its FunctionVersion is seen), 404 for an async one
(never stored for nothing), with a JSON body naming the alias and the version.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
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

from .faults import GatewayFault, NotFound, Unavailable
from .routes import Route

if TYPE_CHECKING:
    from .catalog import FunctionEntry

# (namespace, function, alias)
AliasKey = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class AliasChoice:
    """One alias's routing with the keys of its versions worked out."""

    routing: AliasRouting
    keys: Mapping[int, FunctionKey]  # version -> its version_key
    split: bool  # whether a second version takes a share: only then is a draw needed

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
        draw = sticky_draw(sticky, self.routing.alias) if sticky else random.random()  # noqa: S311
        return pick_version(self.routing, draw)


def sticky_cookie(cookie_header: str | None) -> str | None:
    """The ``STICKY_COOKIE`` cookie's value from a Cookie header; None without one."""
    if not cookie_header or STICKY_COOKIE not in cookie_header:
        return None
    for pair in cookie_header.split(";"):
        name, _, value = pair.strip().partition("=")
        if name == STICKY_COOKIE:
            return value.strip('"') or None
    return None


def _missing(message: str, error_type: str, headers: Mapping[str, str]) -> GatewayFault:
    """As a missing Function: a synchronous caller may try again; an async call is never
    stored for a target that is not there."""
    if invocation_type_of(headers) in (SYNC, None):
        return Unavailable(message, error_type=error_type)
    return NotFound(message, error_type=error_type)


def target_entry(
    route: Route,
    functions: Mapping[FunctionKey, FunctionEntry],
    aliases: Mapping[AliasKey, AliasChoice],
    headers: Mapping[str, str],
) -> FunctionEntry:
    """The entry serving this request of ``route``, or the fault refusing it."""
    if route.key is not None:  # $LATEST or one version: worked out with the route
        entry = functions.get(route.key)
        if entry is not None:
            return entry
        if route.version is None:
            raise _missing(
                f"the Function '{route.function}' of this route does not exist",
                "FunctionNotFound",
                headers,
            )
        raise _missing(
            f"{route.calls} is not published (hanshu versions {route.function} lists "
            "the published ones)",
            "VersionNotFound",
            headers,
        )
    assert route.alias is not None
    choice = aliases.get((route.namespace, route.function, route.alias))
    if choice is None:
        raise _missing(
            f"the Function '{route.function}' has no alias '{route.alias}' (or does not exist)",
            "AliasNotFound",
            headers,
        )
    version = choice.pick(headers)
    entry = functions.get(choice.keys[version])
    if entry is None:
        raise _missing(
            f"alias '{route.alias}' of the Function '{route.function}' points at version "
            f"{version}, which is not published",
            "VersionNotFound",
            headers,
        )
    return entry


__all__ = ["AliasChoice", "AliasKey", "sticky_cookie", "target_entry"]
