"""The service's two kinds of failure, each with a stable ``code``.

- ``DomainError``: the request cannot be honoured as asked (a client can see it). It carries
  the HTTP ``status`` and ``title`` the API answers with; ``problem_fields`` adds what the
  contract puts beside ``code`` (``missing``, ``reason``, ``errors``...). The API maps every one
  in a single place (``booking_durability.api.resolver``).
- ``InfrastructureError``: AWS failed us (a table or queue unreachable, a refused send). Never
  the client's fault: the API answers 503, the consumer lets SQS redeliver.

Messages are written by us and never interpolate input, which may be a guest's address or name.
"""

from __future__ import annotations

from typing import Any, ClassVar


class DomainError(Exception):
    """A refusal a client may see: ``code`` is stable UPPER_SNAKE, ``status`` its HTTP status."""

    code: ClassVar[str] = "DOMAIN_ERROR"
    status: ClassVar[int] = 400
    title: ClassVar[str] = "Request refused"

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title

    def problem_fields(self) -> dict[str, Any]:
        """Fields the problem document carries beside type, title, status, detail and code."""
        return {}


class InfrastructureError(Exception):
    """A dependency (DynamoDB, SQS, Secrets Manager) failed; retrying later may succeed."""

    code: ClassVar[str] = "SERVICE_UNAVAILABLE"

    def __init__(self, message: str = "") -> None:
        super().__init__(message or self.code)


class StoreUnavailable(InfrastructureError):
    """DynamoDB failed for a reason other than a refused condition."""

    code = "STORE_UNAVAILABLE"


class QueueSendFailed(InfrastructureError):
    """SQS refused a message we had to send (publish, re-queue or dead-letter)."""

    code = "QUEUE_SEND_FAILED"


class Busy(InfrastructureError):
    """Too many writers raced for the same records; the request may simply be repeated."""

    code = "BUSY"
