"""The email queue and its DLQ (SQS). Translates SQS failures into ``QueueSendFailed``.

Only the attributes docs/reference/queue-message.md#message-attributes lists ever leave here:
``email_type`` and ``schema`` from producers, plus ``failure_reason``, ``attempts``, ``dedupe_key`` and
``first_dead_lettered_at`` on copies the consumer re-queues or dead-letters and the DLQ tool
redrives. None of them carries personal data.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from booking_durability.adapters.aws import error_code
from booking_durability.emails.ports import OutgoingMessage
from booking_durability.errors import QueueSendFailed

SQS_MAX_DELAY_SECONDS = 900
ALLOWED_ATTRIBUTES = frozenset(
    {"email_type", "schema", "failure_reason", "attempts", "dedupe_key", "first_dead_lettered_at"}
)


def _attributes(values: Mapping[str, str | int]) -> dict[str, dict[str, str]]:
    unknown = set(values) - ALLOWED_ATTRIBUTES
    if unknown:
        raise ValueError(f"message attributes not allowed by the contract: {sorted(unknown)}")
    return {
        name: (
            {"DataType": "Number", "StringValue": str(value)}
            if isinstance(value, int)
            else {"DataType": "String", "StringValue": value}
        )
        for name, value in sorted(values.items())
    }


class EmailQueue:
    """Sends to one SQS queue; ``delay_seconds`` is clamped to what SQS accepts."""

    def __init__(self, queue_url: str, client: Any) -> None:
        self.queue_url = queue_url
        self.client = client

    def send(self, message: OutgoingMessage) -> str:
        try:
            response = self.client.send_message(
                QueueUrl=self.queue_url,
                MessageBody=message.body,
                DelaySeconds=max(0, min(message.delay_seconds, SQS_MAX_DELAY_SECONDS)),
                MessageAttributes=_attributes(message.attributes),
            )
        except (ClientError, BotoCoreError) as exc:
            raise QueueSendFailed(f"send_message failed: {error_code(exc)}") from None
        return str(response["MessageId"])

    def change_visibility(self, receipt_handle: str, seconds: int) -> None:
        try:
            self.client.change_message_visibility(
                QueueUrl=self.queue_url, ReceiptHandle=receipt_handle, VisibilityTimeout=seconds
            )
        except (ClientError, BotoCoreError) as exc:
            raise QueueSendFailed(f"change_message_visibility failed: {error_code(exc)}") from None
