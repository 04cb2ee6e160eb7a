"""Secrets from Secrets Manager (through Powertools parameters, cached), and something built
from a secret that follows its rotation: a provider's API key, a webhook's signing secret."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Generic, TypeVar

from booking_durability.observability import logger

# Rotated secrets reach warm functions within this many seconds.
CACHE_SECONDS = 300

T = TypeVar("T")


def secret_json(secret_arn: str | None) -> Mapping[str, str]:
    """The secret's JSON object; empty when there is no secret (local SMTP)."""
    if not secret_arn:
        return {}
    from aws_lambda_powertools.utilities import parameters

    value = parameters.get_secret(secret_arn, transform="json", max_age=CACHE_SECONDS)
    if not isinstance(value, dict):
        raise ValueError("the secret must be a JSON object")
    return {str(k): str(v) for k, v in value.items()}


class Rotating(Generic[T]):
    """What ``build`` makes from the secret ``read`` returns, rebuilt only when the secret changes.

    ``read`` is cheap (Powertools caches for ``CACHE_SECONDS``), so asking on every use costs a
    dict lookup. When Secrets Manager cannot be reached, what was already built keeps serving.
    A replaced value is left to the garbage collector: other threads may still be using it.
    """

    def __init__(
        self, read: Callable[[], Mapping[str, str]], build: Callable[[Mapping[str, str]], T]
    ) -> None:
        self._read = read
        self._build = build
        self._lock = threading.Lock()
        self._value: T | None = None
        self._secret: dict[str, str] | None = None

    def __call__(self) -> T:
        with self._lock:
            try:
                secret = dict(self._read())
            except Exception as exc:
                if self._value is None:
                    raise
                logger.warning(
                    "secret unavailable; keeping the current credentials",
                    extra={"error_type": type(exc).__name__},
                )
                return self._value
            if self._value is None or secret != self._secret:
                self._value = self._build(secret)
                self._secret = secret
            return self._value
