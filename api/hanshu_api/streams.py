"""Stream Triggers between the operator and the dispatchers, through three NATS KV buckets.

The catalog (``STREAM_CATALOG_BUCKET``): one ``StreamEntry`` per stream Trigger, put by the
operator on each reconcile (and by dev mode from its manifests), deleted with the Trigger.
Every dispatcher watches it and reads the stream: unordered Triggers with one shared
durable consumer / consumer group, ordered ones by whichever dispatcher holds the lease.

The leases (``STREAM_LEASE_BUCKET``, entries expire after ``LEASE_TTL_SECONDS``): the one
reader of an ordered Trigger, created if absent and renewed (revision-checked) every
``LEASE_RENEW_SECONDS``; a dead holder's lease expires and another dispatcher takes it.

The reports (``STREAM_REPORT_BUCKET``, entries expire after ``REPORT_TTL_SECONDS``): one
``StreamReport`` per Trigger and reading dispatcher (health, lag, last delivery, counts);
the operator merges a Trigger's fresh reports (``merge_reports``) and writes its status,
so the dispatcher needs no Kubernetes API access.

A Secret a source names (its URL, which may hold a password) is resolved by the operator
and sealed into the entry with AES-GCM under a key derived (HKDF-SHA256) from the
platform's internal token, which the operator and the dispatchers hold and NATS does not:
who can read NATS reads the catalog, never the Secret. The entry's key is the associated
data, so a sealed value is only ever opened for the Trigger it was sealed for.

    catalog  "shop.orders": {"namespace": "shop", "trigger": "orders", "function": "ingest",
                             "stream": {...the Trigger's spec.stream...},
                             "sealed": {"url": "<base64 nonce+ciphertext>"}}
    reports  "shop.orders.<reader>": {"namespace": "shop", "trigger": "orders",
                             "reader": "<reader>", "healthy": true, "message": "reading ...",
                             "lag": 12, "lastDelivery": 1780338600.0, "delivered": 1000,
                             "failed": 0, "at": 1780338601.0}
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .event_sources import StreamSource
from .message_fields import json_object, required_text
from .schedules import entry_key
from .trigger_spec import TriggerSpec, parse_trigger_spec
from .versions import FunctionTarget

STREAM_CATALOG_BUCKET = "hanshu_streams"
STREAM_LEASE_BUCKET = "hanshu_stream_leases"
STREAM_REPORT_BUCKET = "hanshu_stream_reports"

# A dead holder's lease is gone this long after its last renewal: the takeover time.
LEASE_TTL_SECONDS = 3.0
LEASE_RENEW_SECONDS = 1.0
# A reader rewrites its report at least this often; one not rewritten for the TTL is a
# dead reader's, and expires (the operator stops counting it).
REPORT_INTERVAL_SECONDS = 5.0
REPORT_TTL_SECONDS = 30.0

_HKDF_INFO = b"hanshu stream source secrets v1"


class StreamEntryInvalid(ValueError):
    """A catalog entry or report that cannot be read (or opened): the message says why."""


def _key(token: str, purpose: bytes = b"") -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    info = _HKDF_INFO + purpose
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(token.encode())


def seal(token: str, associated: str, value: str) -> str:
    """``value`` encrypted for whoever holds ``token`` (the associated data must match)."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    # A synthetic nonce (HMAC of what is sealed, under a key of its own): the same value
    # seals the same, so an unchanged entry is not put again (and its readers not
    # restarted) at each reconcile; two different values never share a nonce.
    nonce_key = _key(token, b" nonce")
    nonce = hmac.new(nonce_key, f"{associated}\0{value}".encode(), hashlib.sha256).digest()[:12]
    sealed = AESGCM(_key(token)).encrypt(nonce, value.encode(), associated.encode())
    return base64.b64encode(nonce + sealed).decode()


def unseal(token: str, associated: str, sealed: str) -> str:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    try:
        raw = base64.b64decode(sealed)
        opened = AESGCM(_key(token)).decrypt(raw[:12], raw[12:], associated.encode())
    except (ValueError, InvalidTag):
        raise StreamEntryInvalid(
            "a sealed Secret cannot be opened: the dispatcher's HANSHU_INTERNAL_TOKEN is not "
            "the operator's"
        ) from None
    return opened.decode()


def _object(raw: bytes | str, what: str) -> Mapping[str, Any]:
    return json_object(raw, what, StreamEntryInvalid)


def _text(fields: Mapping[str, Any], name: str, what: str) -> str:
    return required_text(fields, name, what, StreamEntryInvalid)


@dataclass(frozen=True, slots=True)
class StreamEntry:
    """What a dispatcher needs to read a stream Trigger: its ``spec.stream`` as written,
    and the URL its Secret holds, sealed (absent: the platform's NATS)."""

    namespace: str
    trigger: str
    function: str
    stream: Mapping[str, Any]
    sealed: Mapping[str, str] = field(default_factory=dict)
    # The Trigger's functionRef version or alias (issue 28); both None for $LATEST.
    version: int | None = None
    alias: str | None = None

    @property
    def key(self) -> str:
        return entry_key(self.namespace, self.trigger)

    def source(self) -> StreamSource:
        """The parsed stream spec (it was valid when published: the operator checked)."""
        spec: TriggerSpec = parse_trigger_spec(
            {"functionRef": {"name": self.function}, "stream": dict(self.stream)},
            self.namespace,
        )
        assert spec.stream is not None
        return spec.stream

    def url(self, token: str) -> str | None:
        sealed = self.sealed.get("url")
        return unseal(token, self.key, sealed) if sealed else None

    def encode(self) -> bytes:
        return json.dumps(
            {
                "namespace": self.namespace,
                "trigger": self.trigger,
                "function": self.function,
                "stream": dict(self.stream),
                "sealed": dict(self.sealed),
                # Only when set: an entry of $LATEST reads as before (a rolling upgrade).
                **({"version": self.version} if self.version is not None else {}),
                **({"alias": self.alias} if self.alias is not None else {}),
            },
            separators=(",", ":"),
            sort_keys=True,
        ).encode()

    @classmethod
    def parse(cls, raw: bytes | str) -> StreamEntry:
        what = "stream catalog entry"
        fields = _object(raw, what)
        stream, sealed = fields.get("stream"), fields.get("sealed") or {}
        if not isinstance(stream, dict) or not isinstance(sealed, dict):
            raise StreamEntryInvalid(f"the {what}'s stream or sealed is not an object")
        version, alias = fields.get("version"), fields.get("alias")
        if version is not None and (
            isinstance(version, bool) or not isinstance(version, int) or version < 1
        ):
            raise StreamEntryInvalid(f"the {what}'s version must be a version number >= 1")
        if alias is not None and not isinstance(alias, str):
            raise StreamEntryInvalid(f"the {what}'s alias must be a string")
        return cls(
            namespace=_text(fields, "namespace", what),
            trigger=_text(fields, "trigger", what),
            function=_text(fields, "function", what),
            stream=stream,
            sealed={str(k): str(v) for k, v in sealed.items()},
            version=version,
            alias=alias,
        )


def stream_entry(
    namespace: str, trigger: str, function: str, stream: Mapping[str, Any], url: str | None,
    token: str, target: FunctionTarget | None = None,
) -> StreamEntry:  # fmt: skip
    """The entry of a Trigger whose source URL (from its Secret) is ``url``; ``target``:
    its functionRef's version or alias, when it names one."""
    key = entry_key(namespace, trigger)
    sealed = {"url": seal(token, key, url)} if url else {}
    version = target.version if target is not None else None
    alias = target.alias if target is not None else None
    return StreamEntry(namespace, trigger, function, dict(stream), sealed, version, alias)


@dataclass(frozen=True, slots=True)
class StreamReport:
    """One reader's view of a stream Trigger."""

    namespace: str
    trigger: str
    reader: str
    healthy: bool
    message: str
    at: float  # Unix time of the report
    lag: int | None = None
    last_delivery: float | None = None
    delivered: int = 0
    failed: int = 0

    @property
    def key(self) -> str:
        return f"{entry_key(self.namespace, self.trigger)}.{self.reader}"

    def encode(self) -> bytes:
        return json.dumps(
            {
                "namespace": self.namespace,
                "trigger": self.trigger,
                "reader": self.reader,
                "healthy": self.healthy,
                "message": self.message,
                "at": self.at,
                "lag": self.lag,
                "lastDelivery": self.last_delivery,
                "delivered": self.delivered,
                "failed": self.failed,
            },
            separators=(",", ":"),
        ).encode()

    @classmethod
    def parse(cls, raw: bytes | str) -> StreamReport:
        what = "stream report"
        fields = _object(raw, what)
        at, lag, last = fields.get("at"), fields.get("lag"), fields.get("lastDelivery")
        if not isinstance(at, int | float):
            raise StreamEntryInvalid(f"the {what}'s at is not a number")
        return cls(
            namespace=_text(fields, "namespace", what),
            trigger=_text(fields, "trigger", what),
            reader=_text(fields, "reader", what),
            healthy=fields.get("healthy") is True,
            message=str(fields.get("message") or ""),
            at=float(at),
            lag=int(lag) if isinstance(lag, int) else None,
            last_delivery=float(last) if isinstance(last, int | float) else None,
            delivered=int(fields.get("delivered") or 0),
            failed=int(fields.get("failed") or 0),
        )


@dataclass(frozen=True, slots=True)
class StreamStatus:
    """A Trigger's status as its readers see it together."""

    healthy: bool
    message: str
    lag: int | None
    last_delivery: float | None
    delivered: int
    failed: int


def merge_reports(
    reports: Iterable[StreamReport], now: float, fresh_seconds: float = REPORT_TTL_SECONDS
) -> StreamStatus | None:
    """One status from the fresh reports of a Trigger's readers: healthy when one reads
    (the others' trouble is theirs; the stream is being read), else the latest reason;
    the lag is the latest reader's (it is the source's, the same for all); the last
    delivery the latest of any; the counts add up. None: no reader reports."""
    fresh = sorted((r for r in reports if now - r.at <= fresh_seconds), key=lambda r: r.at)
    if not fresh:
        return None
    reading = [r for r in fresh if r.healthy]
    voice = (reading or fresh)[-1]
    deliveries = [r.last_delivery for r in fresh if r.last_delivery is not None]
    lags = [r for r in fresh if r.lag is not None]
    return StreamStatus(
        healthy=bool(reading),
        message=voice.message,
        lag=lags[-1].lag if lags else None,
        last_delivery=max(deliveries) if deliveries else None,
        delivered=sum(r.delivered for r in fresh),
        failed=sum(r.failed for r in fresh),
    )
