"""boto3 clients for the adapters. ``AWS_ENDPOINT_URL`` (set by the local stack) points them at
moto server. Clients are made by each function's wiring (``booking_durability.wiring``), once."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config

_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 3},
    connect_timeout=2,
    read_timeout=5,
    # Records of one batch are handled concurrently and share the client's pool.
    max_pool_connections=50,
)


def client(service: str) -> Any:
    """A new client for ``service`` (thread-safe once made: share it)."""
    return boto3.session.Session().client(service, config=_CONFIG)


def error_code(exc: Exception) -> str:
    """The AWS error code of a failed call (never its message, which may quote input)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", "ClientError"))
    return type(exc).__name__
