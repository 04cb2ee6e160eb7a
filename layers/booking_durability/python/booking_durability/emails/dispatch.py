"""Sending a consumed message on: back to the email queue (a delay hop, a deferral) or to the DLQ.

A record counts as done only after its own re-queue or dead-letter send succeeded: when SQS
refuses, ``RetryLater`` leaves the original on the queue. Every copy carries only attributes
the consumer knows to be sound (``queue_attributes`` validated what it received): never one
taken from a body, which may not even parse.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from booking_durability.emails.models import SCHEMA_ID, FailureReason
from booking_durability.emails.ports import MessageQueue, OutgoingMessage
from booking_durability.errors import QueueSendFailed
from booking_durability.metric_names import Dimension, Metric
from booking_durability.observability import count_with_dimension, logger
from booking_durability.queue_attributes import MAX_ATTEMPTS
from booking_durability.retry import RetryLater
from booking_durability.times import iso, utc_now

__all__ = ["DeadLetterRefused", "Dispatch", "IncomingMessage", "Letter", "RetryLater"]


@dataclass(frozen=True)
class IncomingMessage:
    """The parts of an SQS record the consumer uses; attributes as validated on receipt."""

    message_id: str
    receipt_handle: str
    body: str
    receive_count: int
    attempts: int = 0
    #: When an earlier receive first dead-lettered it (a redriven message), if it says so soundly.
    first_dead_lettered_at: datetime | None = None


@dataclass(frozen=True)
class Letter:
    """Why a message goes to the DLQ, and what of it is known (``email_type`` and
    ``dedupe_key`` only once it validated; ``schema`` only when it named ours)."""

    reason: FailureReason
    attempts: int
    email_type: str | None = None
    dedupe_key: str | None = None
    schema: str | None = SCHEMA_ID


class DeadLetterRefused(RetryLater):
    """SQS refused the dead-letter send of ``letter``: the message must stay on the queue."""

    def __init__(self, letter: Letter) -> None:
        super().__init__("dead-letter send failed")
        self.letter = letter


@dataclass
class Dispatch:
    queue: MessageQueue
    dlq: MessageQueue
    max_hop_seconds: int
    clock: Callable[[], datetime] = field(default=utc_now)

    def requeue(
        self, message: IncomingMessage, email_type: str, *, delay: int, attempts: int | None = None
    ) -> None:
        """Send the message again, unchanged, ``delay`` seconds out (at most one hop)."""
        attributes = self._carried(message, attempts=message.attempts if attempts is None else attempts)
        attributes.update({"email_type": email_type, "schema": SCHEMA_ID})
        self._send(self.queue, OutgoingMessage(message.body, attributes, min(delay, self.max_hop_seconds)))

    def dead_letter(self, message: IncomingMessage, letter: Letter) -> None:
        """Send the message, unchanged, to the DLQ with why; raises ``DeadLetterRefused``."""
        attributes = self._labelled(message, letter)
        attributes.setdefault("first_dead_lettered_at", iso(self.clock()))  # its first time
        try:
            dead_letter_id = self.dlq.send(OutgoingMessage(message.body, attributes))
        except QueueSendFailed as exc:
            logger.error(
                "DLQ send failed; message will be redelivered",
                extra={"error": str(exc), "failure_reason": letter.reason, "message_id": message.message_id},
            )
            raise DeadLetterRefused(letter) from None
        count_with_dimension(Metric.EMAIL_DEAD_LETTERED, Dimension.FAILURE_REASON, letter.reason)
        # Ids only: the operator finds the letter by its DLQ id, and the email by its key.
        logger.warning(
            "email dead-lettered",
            extra={
                "failure_reason": letter.reason,
                "attempts": letter.attempts,
                "message_id": message.message_id,
                "dlq_message_id": dead_letter_id,
                "dedupe_key": letter.dedupe_key,
            },
        )

    def send_back(self, message: IncomingMessage, letter: Letter) -> None:
        """A fresh copy of a message the DLQ refused on its last receive, back on the queue.

        Left as it is, SQS would move it to the DLQ itself on the next receive, without its
        reason; a fresh copy has its receives ahead of it, so its dead-lettering is tried again
        (it carries ``failure_reason`` meanwhile). Raises ``RetryLater`` when SQS refuses this too.
        """
        self._send(self.queue, OutgoingMessage(message.body, self._labelled(message, letter)))
        logger.error(
            "DLQ refused the last receive's dead letter; a fresh copy was queued instead",
            extra={"failure_reason": letter.reason, "message_id": message.message_id},
        )

    def back_off(self, message: IncomingMessage, seconds: int) -> None:
        try:
            self.queue.change_visibility(message.receipt_handle, seconds)
        except QueueSendFailed:
            # SQS brings the message back after the queue's own visibility timeout instead.
            logger.warning("could not set the retry backoff; the queue's visibility timeout applies")

    def _labelled(self, message: IncomingMessage, letter: Letter) -> dict[str, str | int]:
        attributes = self._carried(message, attempts=letter.attempts)
        attributes["failure_reason"] = letter.reason
        for name, value in (
            ("schema", letter.schema),
            ("email_type", letter.email_type),
            ("dedupe_key", letter.dedupe_key),
        ):
            if value is not None:
                attributes[name] = value
        return attributes

    def _carried(self, message: IncomingMessage, *, attempts: int) -> dict[str, str | int]:
        """What every copy carries on: the attempts, and when it was first dead-lettered (a
        redriven letter says so; never later than now)."""
        attributes: dict[str, str | int] = {"attempts": min(attempts, MAX_ATTEMPTS)}
        first = message.first_dead_lettered_at
        if first is not None:
            attributes["first_dead_lettered_at"] = iso(min(first, self.clock()))
        return attributes

    @staticmethod
    def _send(queue: MessageQueue, outgoing: OutgoingMessage) -> None:
        try:
            queue.send(outgoing)
        except QueueSendFailed as exc:
            logger.error("queue send failed; message will be redelivered", extra={"error": str(exc)})
            raise RetryLater("queue send failed") from None
