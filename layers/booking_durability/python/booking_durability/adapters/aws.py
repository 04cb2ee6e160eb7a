"""boto3 clients for the adapters. ``AWS_ENDPOINT_URL`` (set by the local stack) points them at
moto server. Clients are made by each function's wiring (``booking_durability.wiring``), once,
and by the operator scripts.

The region is ``AWS_REGION``, else ``AWS_DEFAULT_REGION``, else the profile's, as the AWS CLI
reads them: botocore alone reads only ``AWS_DEFAULT_REGION``, and operators set ``AWS_REGION``.
"""

from __future__ import annotations

import os
from typing import Any

import boto3
from botocore.config import Config

_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 3},
    connect_timeout=2,
    read_timeout=5,
    # Records of one batch are handled concurrently and share the client's pool.
    max_pool_connections=50,
    # Every request is built by an adapter from typed values (the integration tests check each
    # one against the API's model), and AWS validates it again: a request it refuses still
    # fails as a ClientError. The client's own check is a tenth of a request's CPU
    # (docs/performance.md).
    parameter_validation=False,
)


def client(service: str) -> Any:
    """A new client for ``service`` (thread-safe once made: share it)."""
    return boto3.session.Session(region_name=region()).client(service, config=_CONFIG)


def region() -> str | None:
    """The region the environment names, or ``None`` for the profile's (``AWS_PROFILE``)."""
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None


def error_code(exc: Exception) -> str:
    """The AWS error code of a failed call (never its message, which may quote input)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", "ClientError"))
    return type(exc).__name__
