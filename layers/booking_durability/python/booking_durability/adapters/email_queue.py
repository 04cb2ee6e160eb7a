"""The email queue and its DLQ (SQS). Translates SQS failures into ``QueueSendFailed``.

Only the attributes CONTRACT §2 allows ever leave here: ``email_type`` and ``schema`` from
producers, plus ``failure_reason`` and ``attempts`` on copies the consumer re-queues or
dead-letters. None of them carries personal data.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from booking_durability.adapters import aws
from booking_durability.errors import QueueSendFailed

SQS_MAX_DELAY_SECONDS = 900
SQS_MAX_BATCH = 10
ALLOWED_ATTRIBUTES = frozenset({"email_type", "schema", "failure_reason", "attempts"})


@dataclass(frozen=True)
class OutgoingMessage:
    body: str
    attributes: Mapping[str, str | int]
    delay_seconds: int = 0
    entry_id: str = "0"


@dataclass(frozen=True)
class BatchFailure:
    entry_id: str
    code: str
    sender_fault: bool


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


class EmailQueue(aws.AwsAdapter):
    """Sends to one SQS queue; ``delay_seconds`` is clamped to what SQS accepts."""

    service = "sqs"

    def __init__(self, queue_url: str, client: Any | None = None) -> None:
        super().__init__(client)
        self.queue_url = queue_url

    def send(self, message: OutgoingMessage) -> str:
        try:
            response = self.client.send_message(
                QueueUrl=self.queue_url,
                MessageBody=message.body,
                DelaySeconds=max(0, min(message.delay_seconds, SQS_MAX_DELAY_SECONDS)),
                MessageAttributes=_attributes(message.attributes),
            )
        except (ClientError, BotoCoreError) as exc:
            raise QueueSendFailed(f"send_message failed: {aws.error_code(exc)}") from None
        return str(response["MessageId"])

    def send_batch(self, messages: Iterable[OutgoingMessage]) -> list[BatchFailure]:
        """``SendMessageBatch`` in chunks of ten; returns the entries SQS did not take."""
        pending = list(messages)
        failures: list[BatchFailure] = []
        for start in range(0, len(pending), SQS_MAX_BATCH):
            chunk = pending[start : start + SQS_MAX_BATCH]
            entries = [
                {
                    "Id": m.entry_id,
                    "MessageBody": m.body,
                    "DelaySeconds": max(0, min(m.delay_seconds, SQS_MAX_DELAY_SECONDS)),
                    "MessageAttributes": _attributes(m.attributes),
                }
                for m in chunk
            ]
            try:
                response = self.client.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
            except (ClientError, BotoCoreError) as exc:
                code = aws.error_code(exc)
                failures.extend(BatchFailure(m.entry_id, code, False) for m in chunk)
                continue
            failures.extend(
                BatchFailure(f["Id"], f.get("Code", "Unknown"), bool(f.get("SenderFault")))
                for f in response.get("Failed", [])
            )
        return failures

    def change_visibility(self, receipt_handle: str, seconds: int) -> None:
        try:
            self.client.change_message_visibility(
                QueueUrl=self.queue_url, ReceiptHandle=receipt_handle, VisibilityTimeout=seconds
            )
        except (ClientError, BotoCoreError) as exc:
            raise QueueSendFailed(f"change_message_visibility failed: {aws.error_code(exc)}") from None
