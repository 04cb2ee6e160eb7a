"""Sending a consumed message on: back to the email queue (a delay hop, a deferral) or to the DLQ.

A record counts as done only after its own re-queue or dead-letter send succeeded: when SQS
refuses, ``RetryLater`` leaves the original on the queue.
"""

from __future__ import annotations

from dataclasses import dataclass

from booking_durability.emails.models import SCHEMA_ID, FailureReason
from booking_durability.emails.ports import MessageQueue, OutgoingMessage
from booking_durability.errors import QueueSendFailed
from booking_durability.observability import count_with_dimension, logger
from booking_durability.retry import RetryLater

__all__ = ["Dispatch", "IncomingMessage", "RetryLater"]


@dataclass(frozen=True)
class IncomingMessage:
    """The parts of an SQS record the consumer uses."""

    message_id: str
    receipt_handle: str
    body: str
    receive_count: int
    attempts: int = 0


@dataclass
class Dispatch:
    queue: MessageQueue
    dlq: MessageQueue
    max_hop_seconds: int

    def requeue(
        self, message: IncomingMessage, email_type: str, *, delay: int, attempts: int | None = None
    ) -> None:
        """Send the message again, unchanged, ``delay`` seconds out (at most one hop)."""
        attributes: dict[str, str | int] = {
            "email_type": email_type,
            "schema": SCHEMA_ID,
            "attempts": message.attempts if attempts is None else attempts,
        }
        self._send(self.queue, OutgoingMessage(message.body, attributes, min(delay, self.max_hop_seconds)))

    def dead_letter(
        self,
        message: IncomingMessage,
        reason: FailureReason,
        attempts: int,
        email_type: str | None = None,
        *,
        schema: str | None = SCHEMA_ID,
    ) -> None:
        """Send the message, unchanged, to the DLQ with why; ``email_type`` when it parsed.

        Attributes come only from values we know, never from the body (it may not even parse).
        """
        attributes: dict[str, str | int] = {"failure_reason": reason, "attempts": attempts}
        if schema is not None:
            attributes["schema"] = schema
        if email_type is not None:
            attributes["email_type"] = email_type
        self._send(self.dlq, OutgoingMessage(message.body, attributes))
        count_with_dimension("EmailDeadLettered", "failure_reason", reason)
        logger.warning(
            "email dead-lettered",
            extra={"failure_reason": reason, "attempts": attempts, "message_id": message.message_id},
        )

    def back_off(self, message: IncomingMessage, seconds: int) -> None:
        try:
            self.queue.change_visibility(message.receipt_handle, seconds)
        except QueueSendFailed:
            # SQS brings the message back after the queue's own visibility timeout instead.
            logger.warning("could not set the retry backoff; the queue's visibility timeout applies")

    @staticmethod
    def _send(queue: MessageQueue, outgoing: OutgoingMessage) -> None:
        try:
            queue.send(outgoing)
        except QueueSendFailed as exc:
            logger.error("queue send failed; message will be redelivered", extra={"error": str(exc)})
            raise RetryLater("queue send failed") from None
