"""Secrets from Secrets Manager (through Powertools parameters, cached), and something built
from a secret that follows its rotation: a provider's API key, a webhook's signing secret."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Mapping
from typing import Generic, TypeVar

from booking_durability.adapters.aws import error_code
from booking_durability.errors import InfrastructureError
from booking_durability.observability import logger

# Rotated secrets reach warm functions within this many seconds.
CACHE_SECONDS = 300

# What a stack's ``secretsmanager.Secret`` holds until an operator puts the real value: without a
# value of its own, CloudFormation has Secrets Manager generate one with its defaults, 32
# printable ASCII characters without spaces. A credential is a JSON object, so such a string
# that does not parse is the placeholder.
_GENERATED_PLACEHOLDER = re.compile(r"[!-~]{32}")

T = TypeVar("T")


class SecretUnreadable(InfrastructureError):
    """A secret that cannot be used. ``cause`` says why, never what it holds: ``missing`` (no
    such secret, or no value), ``placeholder`` (still the value generated at deploy),
    ``not_json``, ``not_object`` (JSON, but not an object) or ``unreadable`` (access denied,
    Secrets Manager out of reach)."""

    code = "SECRET_UNREADABLE"

    def __init__(self, cause: str) -> None:
        super().__init__(f"secret unusable: {cause}")
        self.cause = cause


def secret_json(secret_arn: str | None) -> Mapping[str, str]:
    """The secret's JSON object; empty when there is no secret (local SMTP).

    Raises ``SecretUnreadable``, whose message never quotes the value (a transform error would).
    """
    if not secret_arn:
        return {}
    from aws_lambda_powertools.utilities import parameters

    try:
        value = parameters.get_secret(secret_arn, max_age=CACHE_SECONDS)
    except parameters.exceptions.GetParameterError as exc:
        # Powertools wraps the AWS error; its code (never its message) says which it was.
        code = error_code(exc.__context__) if isinstance(exc.__context__, Exception) else ""
        raise SecretUnreadable("missing" if code == "ResourceNotFoundException" else "unreadable") from None
    return _json_object(value)


def _json_object(value: object) -> dict[str, str]:
    if not isinstance(value, str) or not value.strip():
        raise SecretUnreadable("missing" if not value else "not_json")
    try:
        parsed = json.loads(value)
    except (ValueError, RecursionError):
        cause = "placeholder" if _GENERATED_PLACEHOLDER.fullmatch(value) else "not_json"
        raise SecretUnreadable(cause) from None
    if not isinstance(parsed, dict):
        raise SecretUnreadable("not_object")
    return {str(k): str(v) for k, v in parsed.items()}


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
