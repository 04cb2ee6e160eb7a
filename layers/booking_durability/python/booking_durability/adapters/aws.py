"""boto3 clients, created on first use and shared (they are thread-safe).

``AWS_ENDPOINT_URL`` (set by the local stack) points every client at moto server.
"""

from __future__ import annotations

import functools
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


@functools.cache
def client(service: str) -> Any:
    return boto3.session.Session().client(service, config=_CONFIG)  # type: ignore[call-overload]


class AwsAdapter:
    """Base of the adapters: a client handed in (tests) or the shared one, made on first use."""

    service: str

    def __init__(self, client: Any | None = None) -> None:
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = client(self.service)
        return self._client


def error_code(exc: Exception) -> str:
    """The AWS error code of a failed call (never its message, which may quote input)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", "ClientError"))
    return type(exc).__name__
