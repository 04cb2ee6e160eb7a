"""Domain errors: each has a stable ``code`` and a message that never carries submitted values."""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error the service raises on purpose.

    ``code`` is stable UPPER_SNAKE; the message is written by us and never interpolates
    input (which may be a guest's email address or name).
    """

    code = "DOMAIN_ERROR"

    def __init__(self, message: str = "") -> None:
        super().__init__(message or self.code)


class QueueSendFailed(DomainError):
    """SQS refused a message we had to re-queue or dead-letter."""

    code = "QUEUE_SEND_FAILED"
