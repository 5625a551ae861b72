"""Versions and aliases: the shared contract (issue 28).

Lambda and Function Compute publish immutable versions and point aliases at them, with a
second version taking a weighted share; Knative keeps every template as a Revision and
splits traffic by percent. Hanshu takes Lambda's names and Knative's mechanics:

- A published version is a ``FunctionVersion`` object named ``version_object_name``: an
  immutable snapshot of the Function's spec (``spec.template``), numbered 1, 2, 3 ...
  Publishing an unchanged spec returns the existing version (``spec_digest``).
- ``$LATEST`` is the Function's spec as it is: today's Deployment, named like the Function.
- Each version that takes traffic runs as its own Deployment and Service, named by
  ``version_key``; a version's FunctionKey is ``(namespace, version_key(...))``, so the
  gateway's endpoint pools, the autoscaler's scale writes and the metrics treat it like a
  Function of its own, and it scales from zero on its own.
- An alias (``spec.aliases`` on the Function) names a version, optionally a second one
  with a weight (1-99 %), and optionally canary steps. What the gateway routes by is the
  alias's *effective* routing: the spec's, or while a canary runs or after it rolled back,
  the one in the Function's ``status.aliases`` (written by the canary's controller).
- A Trigger's ``functionRef`` names the Function and at most one of ``version`` / ``alias``.

Every reader and writer of these shapes (the operator, the gateway, the autoscaler, the
CLI) parses and builds them here.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from . import GROUP
from .durations import parse_duration
from .spec_fields import DNS_LABEL_MAX_LENGTH

FUNCTION_VERSION_KIND = "FunctionVersion"
FUNCTION_VERSION_PLURAL = "functionversions"
LATEST = "$LATEST"

# On a FunctionVersion and on every child of a version (Deployment, Service, ConfigMap,
# pods): which Function it is a version of, and its number. Not LABEL_FUNCTION, which stays
# the selector of one Deployment's pods (a version's is its version_key).
LABEL_VERSION_OF = f"{GROUP}/version-of"
LABEL_VERSION = f"{GROUP}/version"

ALIAS_NAME_PATTERN = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
ALIAS_NAME_MAX_LENGTH = 32
MAX_ALIASES = 16
MAX_CANARY_STEPS = 10
MIN_WEIGHT = 1
MAX_WEIGHT = 99
# A published version's description (hanshu publish --description), at most.
DESCRIPTION_MAX_LENGTH = 256
# How many published versions that nothing references are kept (the newest ones).
DEFAULT_KEEP_UNREFERENCED = 3

# The header (or cookie) a caller sets to stay on one version of a split alias: its value is
# hashed, so the same value always lands on the same version while the weights hold.
STICKY_HEADER = "X-Hanshu-Sticky"
STICKY_COOKIE = "hanshu-sticky"
# The reply header naming the version that served a request through an alias.
VERSION_HEADER = "X-Hanshu-Version"
# The ``version`` label of metrics (and the version an invocation record names) for
# $LATEST: Prometheus label values are free text, but "$" is awkward in PromQL and shells.
VERSION_LABEL_LATEST = "LATEST"


# What ends every version's name (and its Deployment's, Service's, FunctionKey's): a
# Function's own name may not end so (the Function CRD's CEL rule and function_name_problem
# refuse it), or version 2 of 'api' and a Function named 'api-v2' would share children.
VERSION_NAME_SUFFIX = re.compile(r"-v[0-9]+$")


def function_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a Function's, as the CRD says it; None when it can."""
    if VERSION_NAME_SUFFIX.search(name):
        return (
            f"a Function's name must not end in -v and a number ({name!r}): that names its "
            "published versions' Deployments and Services; call it e.g. "
            f"{VERSION_NAME_SUFFIX.sub('', name)!r} or {name.replace('-v', '-', 1)!r}"
        )
    return None


def version_object_name(function: str, version: int) -> str:
    """The FunctionVersion's name, which is also its Deployment's and Service's name.

    A Service name is a DNS label (63 characters): a long Function name is cut and a short
    digest of the whole name keeps two such Functions apart.
    """
    suffix = f"-v{version}"
    if len(function) + len(suffix) <= DNS_LABEL_MAX_LENGTH:
        return function + suffix
    digest = hashlib.sha256(function.encode()).hexdigest()[:8]
    keep = DNS_LABEL_MAX_LENGTH - len(suffix) - len(digest) - 1
    return f"{function[:keep].rstrip('-')}-{digest}{suffix}"


def version_key(function: str, version: int | None) -> str:
    """The name a version runs under (Deployment, Service, FunctionKey); None is $LATEST."""
    return function if version is None else version_object_name(function, version)


def version_label(version: int | None) -> str:
    """A version as metrics label it: ``LATEST`` for $LATEST (None), else its number."""
    return VERSION_LABEL_LATEST if version is None else str(version)


def spec_digest(spec: Mapping[str, Any]) -> str:
    """What makes two published snapshots the same: the spec without its aliases (moving an
    alias is not a change of code or settings), canonical JSON, SHA-256."""
    snapshot = {key: value for key, value in spec.items() if key != "aliases"}
    canonical = json.dumps(snapshot, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


# ---------------------------------------------------------------------------------------
# Aliases
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Canary:
    """Shift the additional version's weight through ``steps`` (percent, rising; the last
    may be 100, which promotes it), one step every ``interval_seconds``, while its error
    rate stays under ``max_error_rate`` (a fraction) and its p99 latency under
    ``max_p99_seconds``; judged only on windows with at least ``min_requests`` requests."""

    steps: tuple[int, ...]
    interval_seconds: float
    max_error_rate: float = 0.05
    max_p99_seconds: float | None = None
    min_requests: int = 20


@dataclass(frozen=True, slots=True)
class Alias:
    name: str
    version: int
    additional_version: int | None = None
    additional_weight: int = 0  # percent of requests to additional_version
    canary: Canary | None = None

    def versions(self) -> tuple[int, ...]:
        if self.additional_version is None:
            return (self.version,)
        return (self.version, self.additional_version)


def _int(raw: Mapping[str, Any], key: str, where: str, problems: list[str]) -> int | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        problems.append(f"{where}.{key} must be a version number >= 1, got {value!r}")
        return None
    return value


def _canary(raw: Mapping[str, Any], where: str, problems: list[str]) -> Canary | None:
    steps = raw.get("steps")
    if (
        not isinstance(steps, list)
        or not steps
        or len(steps) > MAX_CANARY_STEPS
        or not all(isinstance(s, int) and not isinstance(s, bool) for s in steps)
    ):
        problems.append(
            f"{where}.steps must be 1 to {MAX_CANARY_STEPS} whole percentages, e.g. [10, 50, 100]"
        )
        return None
    if any(not MIN_WEIGHT <= s <= 100 for s in steps) or steps != sorted(set(steps)):
        problems.append(f"{where}.steps must rise strictly, each from 1 to 100, got {steps}")
        return None
    try:
        interval = parse_duration(str(raw.get("interval", "5m")))
    except ValueError as error:
        problems.append(f"{where}.interval: {error}")
        return None
    max_error_rate = raw.get("maxErrorRate", 5)
    if not isinstance(max_error_rate, int | float) or not 0 <= max_error_rate <= 100:
        problems.append(f"{where}.maxErrorRate must be a percentage 0-100, got {max_error_rate!r}")
        return None
    p99 = raw.get("maxP99Latency")
    try:
        max_p99 = parse_duration(str(p99)) if p99 is not None else None
    except ValueError as error:
        problems.append(f"{where}.maxP99Latency: {error}")
        return None
    min_requests = raw.get("minRequests", 20)
    if not isinstance(min_requests, int) or min_requests < 1:
        problems.append(f"{where}.minRequests must be a whole number >= 1")
        return None
    return Canary(tuple(steps), interval, max_error_rate / 100, max_p99, min_requests)


def parse_alias(raw: Mapping[str, Any], where: str, problems: list[str]) -> Alias | None:
    """One ``spec.aliases[i]``; every problem is named with its path and what would be right."""
    name = raw.get("name")
    if (
        not isinstance(name, str)
        or len(name) > ALIAS_NAME_MAX_LENGTH
        or not ALIAS_NAME_PATTERN.match(name)
    ):
        problems.append(
            f"{where}.name {name!r} must be a DNS label of at most {ALIAS_NAME_MAX_LENGTH} "
            "characters, e.g. 'live'"
        )
        return None
    version = _int(raw, "version", where, problems)
    if version is None:
        if "version" not in raw:
            problems.append(f"{where}.version is required (the version the alias points at)")
        return None
    additional = _int(raw, "additionalVersion", where, problems)
    weight = raw.get("additionalWeight")
    canary = _canary(raw["canary"], f"{where}.canary", problems) if raw.get("canary") else None
    if additional is None:
        if weight is not None or canary is not None:
            problems.append(
                f"{where}: additionalWeight and canary need additionalVersion (the second "
                "version that takes a share)"
            )
        return Alias(name, version)
    if additional == version:
        problems.append(
            f"{where}.additionalVersion {additional} equals version; name a different one "
            "or remove it"
        )
        return None
    if canary is None and (
        isinstance(weight, bool)
        or not isinstance(weight, int)
        or not MIN_WEIGHT <= weight <= MAX_WEIGHT
    ):
        problems.append(
            f"{where}.additionalWeight must be a percentage from {MIN_WEIGHT} to {MAX_WEIGHT} "
            f"(the share additionalVersion {additional} takes), got {weight!r}"
        )
        return None
    start = canary.steps[0] if canary is not None else int(weight or 0)
    return Alias(name, version, additional, min(start, 100), canary)


def parse_aliases(raw: object, problems: list[str]) -> tuple[Alias, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or len(raw) > MAX_ALIASES:
        problems.append(f"spec.aliases must be a list of at most {MAX_ALIASES} aliases")
        return ()
    aliases: list[Alias] = []
    seen: set[str] = set()
    for index, entry in enumerate(raw):
        where = f"spec.aliases[{index}]"
        if not isinstance(entry, Mapping):
            problems.append(f"{where} must be an object with name and version")
            continue
        alias = parse_alias(entry, where, problems)
        if alias is None:
            continue
        if alias.name in seen:
            problems.append(f"{where}.name {alias.name!r} is used twice; alias names are unique")
            continue
        seen.add(alias.name)
        aliases.append(alias)
    return tuple(aliases)


def missing_versions(aliases: Sequence[Alias], published: set[int]) -> list[str]:
    """Each alias that points at a version not published (or deleted), as a sentence."""
    return [
        f"alias {alias.name!r} points at version {number}, which is not published "
        f"(published: {', '.join(map(str, sorted(published))) or 'none'})"
        for alias in aliases
        for number in alias.versions()
        if number not in published
    ]


# ---------------------------------------------------------------------------------------
# Effective routing: what the gateway splits by
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AliasRouting:
    """Where an alias sends requests now: ``version``, and ``additional_weight`` percent of
    them to ``additional_version``."""

    alias: str
    version: int
    additional_version: int | None = None
    additional_weight: int = 0

    def to_status(self) -> dict[str, Any]:
        status: dict[str, Any] = {"name": self.alias, "version": self.version}
        if self.additional_version is not None and self.additional_weight > 0:
            status["additionalVersion"] = self.additional_version
            status["additionalWeight"] = self.additional_weight
        return status

    @classmethod
    def from_alias(cls, alias: Alias) -> AliasRouting:
        return cls(alias.name, alias.version, alias.additional_version, alias.additional_weight)

    @classmethod
    def from_status(cls, raw: Mapping[str, Any]) -> AliasRouting | None:
        """A ``status.aliases[i]`` entry; None for one that cannot be read (ignored)."""
        name, version = raw.get("name"), raw.get("version")
        if not isinstance(name, str) or not isinstance(version, int):
            return None
        additional = raw.get("additionalVersion")
        weight = raw.get("additionalWeight", 0)
        if not isinstance(additional, int) or not isinstance(weight, int):
            return cls(name, version)
        return cls(name, version, additional, max(0, min(100, weight)))


def effective_routing(
    aliases: Sequence[Alias], status_aliases: Sequence[Mapping[str, Any]]
) -> dict[str, AliasRouting]:
    """Each alias's routing: the status's entry when it names the same versions as the spec
    (a canary in progress or rolled back), else the spec's own weights."""
    from_status = {
        routing.alias: routing
        for routing in map(AliasRouting.from_status, status_aliases)
        if routing is not None
    }
    result: dict[str, AliasRouting] = {}
    for alias in aliases:
        spec_routing = AliasRouting.from_alias(alias)
        current = from_status.get(alias.name)
        if current is not None and _routed(current) <= set(alias.versions()):
            result[alias.name] = current
        else:
            result[alias.name] = spec_routing
    return result


def _routed(routing: AliasRouting) -> set[int]:
    if routing.additional_version is None or routing.additional_weight <= 0:
        return {routing.version}
    return {routing.version, routing.additional_version}


def pick_version(routing: AliasRouting, draw: float) -> int:
    """The version one request goes to; ``draw`` is uniform in [0, 1) (random per request,
    or ``sticky_draw`` of the caller's sticky value)."""
    if routing.additional_version is not None and draw * 100 < routing.additional_weight:
        return routing.additional_version
    return routing.version


def sticky_draw(value: str, alias: str) -> float:
    """A caller's sticky value as a draw in [0, 1): the same value always lands on the same
    version while the weights hold (and moves as they shift, as little as it can)."""
    digest = hashlib.blake2b(f"{alias}\0{value}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


# ---------------------------------------------------------------------------------------
# What a Trigger calls
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FunctionTarget:
    """A Trigger's ``functionRef``: the Function's $LATEST, one version, or an alias."""

    function: str
    version: int | None = None
    alias: str | None = None

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.function}:{self.version}"
        if self.alias is not None:
            return f"{self.function}:{self.alias}"
        return self.function


def parse_function_target(
    function: str, ref: Mapping[str, Any], problems: list[str]
) -> FunctionTarget:
    """``functionRef.version`` / ``functionRef.alias`` beside ``functionRef.name``."""
    version = _int(ref, "version", "spec.functionRef", problems)
    alias = ref.get("alias")
    if alias is not None and (
        not isinstance(alias, str)
        or len(alias) > ALIAS_NAME_MAX_LENGTH
        or not ALIAS_NAME_PATTERN.match(alias)
    ):
        problems.append(f"spec.functionRef.alias {alias!r} must be an alias name, e.g. 'live'")
        alias = None
    if version is not None and alias is not None:
        problems.append("spec.functionRef takes version or alias, not both")
        return FunctionTarget(function)
    return FunctionTarget(function, version, alias)
