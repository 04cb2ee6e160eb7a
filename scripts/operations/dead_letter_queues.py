"""The DLQs as the operator's tool uses them (SQS), and where they are.

``SqsDeadLetterQueue`` receives letters (hidden for a while, never deleted unless asked), makes
them visible again, deletes them, and reads the queues' counts with SQS's own time. It reads
only the message attributes the service defines, and leaves the body to
``operations.dead_letters``, which decides what of it may be looked at. SQS failures become
``QueueUnavailable`` (the error code, never the message).

``locate_local`` / ``locate_in_aws`` find a DLQ and its source queue: the local stack's
``stack.json`` (``queues``: ``email``/``email_dlq``, ``notifications``/``notifications_dlq``), or
in AWS the given URLs or the stack's outputs (``EmailQueueUrl``/``EmailDlqUrl``,
``NotificationsQueueUrl``/``NotificationsDlqUrl``), through ``stack_lookup``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from booking_durability.adapters import aws
from booking_durability.adapters.aws import error_code
from booking_durability.adapters.email_queue import ALLOWED_ATTRIBUTES, EmailQueue
from booking_durability.errors import InfrastructureError
from booking_durability.stack_outputs import StackOutput
from operations.dead_letters import (
    DeadLetter,
    QueueKind,
    failure_reason_of,
    first_dead_lettered_at_of,
    key_of,
    message_type_of,
)
from operations.stack_lookup import local_stack, stack_outputs

RECEIVE_BATCH = 10  # SQS's most per receive and per batch request
_OUTPUTS = {
    QueueKind.EMAIL: (StackOutput.EMAIL_QUEUE_URL, StackOutput.EMAIL_DLQ_URL),
    QueueKind.NOTIFICATIONS: (StackOutput.NOTIFICATIONS_QUEUE_URL, StackOutput.NOTIFICATIONS_DLQ_URL),
}


class QueueUnavailable(InfrastructureError):
    """SQS failed a receive, visibility change, delete or count."""

    code = "QUEUE_UNAVAILABLE"


@dataclass(frozen=True)
class QueueCounts:
    """A queue's approximate counts, and what SQS said with them."""

    visible: int
    in_flight: int
    delayed: int
    #: SQS's time when it answered, rounded up to the second (its ``Date`` header is to the
    #: second): every message it had stamped before answering is stamped before this.
    as_of: datetime | None = None
    #: How long the queue keeps a message (``MessageRetentionPeriod``).
    retention: timedelta | None = None

    @property
    def present(self) -> int:
        """The messages the queue holds, visible or not."""
        return self.visible + self.in_flight + self.delayed


class SqsDeadLetterQueue:
    """One DLQ and the queue it was fed by. ``wait_seconds`` is each receive's long poll: a
    short poll samples only some SQS servers and may answer empty while letters remain."""

    def __init__(
        self, kind: QueueKind, dlq_url: str, source_url: str, client: Any, *, wait_seconds: int = 1
    ) -> None:
        self.kind = kind
        self.url = dlq_url
        self.source_url = source_url
        self.client = client
        self.wait_seconds = wait_seconds

    def source(self) -> EmailQueue:
        """The source queue, for sending copies (the service's own sender, same attribute rules)."""
        return EmailQueue(self.source_url, self.client)

    def receive(self, hide_for_seconds: int) -> list[DeadLetter]:
        response = self._call(
            "receive_message",
            QueueUrl=self.url,
            MaxNumberOfMessages=RECEIVE_BATCH,
            VisibilityTimeout=hide_for_seconds,
            WaitTimeSeconds=self.wait_seconds,
            MessageAttributeNames=sorted(ALLOWED_ATTRIBUTES),
            MessageSystemAttributeNames=["SentTimestamp"],
        )
        return [self._letter(message) for message in response.get("Messages", [])]

    def hide(self, letters: Sequence[DeadLetter], seconds: int) -> None:
        for start in range(0, len(letters), RECEIVE_BATCH):
            chunk = letters[start : start + RECEIVE_BATCH]
            response = self._call(
                "change_message_visibility_batch",
                QueueUrl=self.url,
                Entries=[
                    {"Id": str(index), "ReceiptHandle": letter.handle, "VisibilityTimeout": seconds}
                    for index, letter in enumerate(chunk)
                ],
            )
            failed = response.get("Failed") or []
            if failed:
                raise QueueUnavailable(f"change_message_visibility_batch failed: {failed[0].get('Code')}")

    def delete(self, letter: DeadLetter) -> None:
        self._call("delete_message", QueueUrl=self.url, ReceiptHandle=letter.handle)

    def counts(self, url: str | None = None) -> QueueCounts:
        """The DLQ's approximate counts (or another queue's, by ``url``), with SQS's time."""
        names = {
            "visible": "ApproximateNumberOfMessages",
            "in_flight": "ApproximateNumberOfMessagesNotVisible",
            "delayed": "ApproximateNumberOfMessagesDelayed",
        }
        response = self._call(
            "get_queue_attributes",
            QueueUrl=url or self.url,
            AttributeNames=[*names.values(), "MessageRetentionPeriod"],
        )
        attributes = response["Attributes"]
        retention = attributes.get("MessageRetentionPeriod")
        return QueueCounts(
            **{field: int(attributes.get(name, 0)) for field, name in names.items()},
            as_of=_answered_at(response),
            retention=timedelta(seconds=int(retention)) if retention is not None else None,
        )

    def _letter(self, message: Mapping[str, Any]) -> DeadLetter:
        attributes = contract_attributes(message.get("MessageAttributes") or {})
        body = str(message.get("Body", ""))
        sent_ms = int(message.get("Attributes", {}).get("SentTimestamp", 0))
        sent_at = datetime.fromtimestamp(sent_ms / 1000, UTC)
        return DeadLetter(
            message_id=str(message["MessageId"]),
            sent_at=sent_at,
            failure_reason=failure_reason_of(self.kind, attributes),
            message_type=message_type_of(self.kind, attributes, body),
            attributes=attributes,
            body=body,
            handle=str(message["ReceiptHandle"]),
            key=key_of(self.kind, attributes, body),
            first_dead_lettered_at=first_dead_lettered_at_of(attributes, sent_at),
        )

    def _call(self, operation: str, **parameters: Any) -> Any:
        try:
            return getattr(self.client, operation)(**parameters)
        except (ClientError, BotoCoreError) as exc:
            raise QueueUnavailable(f"{operation} failed: {error_code(exc)}") from None


def contract_attributes(raw: Mapping[str, Any]) -> dict[str, str | int]:
    """The message's attributes the service defines (others are ignored), a ``Number`` of ASCII
    digits as an int."""
    attributes: dict[str, str | int] = {}
    for name in ALLOWED_ATTRIBUTES & set(raw):
        value = str(raw[name].get("StringValue", ""))
        numeric = (
            str(raw[name].get("DataType", "")).startswith("Number") and value.isascii() and value.isdigit()
        )
        attributes[name] = int(value) if numeric else value
    return attributes


def _answered_at(response: Mapping[str, Any]) -> datetime | None:
    """When SQS answered, by its ``Date`` header, rounded up to the next second; ``None`` without
    one (the operator's clock is no stand-in: it may be minutes off SQS's)."""
    date = response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
    try:
        answered = parsedate_to_datetime(date) if date else None
    except (TypeError, ValueError):
        return None
    if answered is None or answered.tzinfo is None:
        return None
    return answered.astimezone(UTC) + timedelta(seconds=1)


# -- where the queues are -----------------------------------------------------------------------


def locate_local(stack_file: Path, kind: QueueKind, *, wait_seconds: int = 1) -> SqsDeadLetterQueue:
    """The ``kind`` DLQ of the local stack ``stack_file`` describes (``make run``), on moto.
    Raises ``StackNotFound``."""
    (source_url, dlq_url), client = local_stack(
        stack_file, "sqs", lambda stack: (stack["queues"][kind.value], stack["queues"][f"{kind.value}_dlq"])
    )
    return SqsDeadLetterQueue(kind, dlq_url, source_url, client, wait_seconds=wait_seconds)


def locate_in_aws(
    kind: QueueKind,
    *,
    stack_name: str,
    queue_url: str | None = None,
    dlq_url: str | None = None,
    wait_seconds: int = 1,
) -> SqsDeadLetterQueue:
    """The given URLs (both), else the stack's outputs, in the AWS environment's account.
    Raises ``StackNotFound``."""
    if queue_url is None or dlq_url is None:
        queue_url, dlq_url = stack_outputs(stack_name, *_OUTPUTS[kind])
    return SqsDeadLetterQueue(kind, dlq_url, queue_url, aws.client("sqs"), wait_seconds=wait_seconds)
