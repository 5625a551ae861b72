"""Protections per Trigger: API keys, token-bucket rate limits, CORS. Pure logic."""

from __future__ import annotations

import hmac
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from hanshu_api.models import Cors


def api_key_matches(presented: str, keys: Iterable[str]) -> bool:
    """Constant-time comparison against every valid key (several allow rotation)."""
    presented_bytes = presented.encode()
    matched = False
    for key in keys:
        # No early exit: the time does not tell which key (or how much of one) matched.
        matched |= hmac.compare_digest(presented_bytes, key.encode())
    return matched


def keys_from_secret_value(value: str) -> list[str]:
    """One key per line, so a Secret can hold the old and the new key while rotating."""
    return [line.strip() for line in value.splitlines() if line.strip()]


@dataclass
class TokenBucket:
    rate: float  # tokens per second
    burst: int
    tokens: float = -1.0
    updated: float = 0.0

    def take(self, now: float) -> float:
        """0 when the request may pass; else the seconds until a token is available."""
        if self.tokens < 0:
            self.tokens, self.updated = float(self.burst), now
        self.tokens = min(float(self.burst), self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


def retry_after_header(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))


def _allowed_origin(cors: Cors, origin: str) -> str | None:
    if "*" in cors.allow_origins and not cors.allow_credentials:
        return "*"
    return origin if origin in cors.allow_origins or "*" in cors.allow_origins else None


def preflight_headers(
    cors: Cors, origin: str, requested_headers: str | None
) -> dict[str, str] | None:
    """Headers for an OPTIONS preflight; None when the origin is not allowed."""
    allowed = _allowed_origin(cors, origin)
    if allowed is None:
        return None
    headers = {
        "Access-Control-Allow-Origin": allowed,
        "Access-Control-Allow-Methods": ", ".join(
            cors.allow_methods or ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
        ),
        "Vary": "Origin",
    }
    if cors.allow_headers:
        headers["Access-Control-Allow-Headers"] = ", ".join(cors.allow_headers)
    elif requested_headers:
        headers["Access-Control-Allow-Headers"] = requested_headers
    if cors.allow_credentials:
        headers["Access-Control-Allow-Credentials"] = "true"
    if cors.max_age_seconds is not None:
        headers["Access-Control-Max-Age"] = str(cors.max_age_seconds)
    return headers


def response_cors_headers(cors: Cors, origin: str) -> Mapping[str, str]:
    allowed = _allowed_origin(cors, origin)
    if allowed is None:
        return {}
    headers = {"Access-Control-Allow-Origin": allowed, "Vary": "Origin"}
    if cors.expose_headers:
        headers["Access-Control-Expose-Headers"] = ", ".join(cors.expose_headers)
    if cors.allow_credentials:
        headers["Access-Control-Allow-Credentials"] = "true"
    return headers
