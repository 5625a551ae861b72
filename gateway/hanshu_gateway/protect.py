"""Protections per Trigger: token-bucket rate limits, CORS. Pure logic. (API keys are
verified against published hashes: hanshu_api.api_keys.)"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from hanshu_api.models import Cors


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
