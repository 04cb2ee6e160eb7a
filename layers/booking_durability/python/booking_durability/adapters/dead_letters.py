"""The DLQs as the operator's tool uses them (SQS), and where they are.

``SqsDeadLetterQueue`` receives letters (hidden for a while, never deleted unless asked), makes
them visible again, deletes them, reads the queues' counts and runs SQS's server-side redrive
(``StartMessageMoveTask``). It reads only the attributes CONTRACT §2 defines, and leaves the
body unread: ``operations.dead_letters`` decides what of it may be looked at. SQS failures
become ``QueueUnavailable`` (the error code, never the message).

``locate_local`` / ``locate_in_aws`` find a DLQ and its source queue: the local stack's
``stack.json`` (``queues``: ``email``/``email_dlq``, ``notifications``/``notifications_dlq``), or
in AWS the given URLs or the stack's outputs (``EmailQueueUrl``/``EmailDlqUrl``,
``NotificationsQueueUrl``/``NotificationsDlqUrl``), through ``stack_lookup``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from booking_durability.adapters import aws
from booking_durability.adapters.aws import error_code
from booking_durability.adapters.email_queue import ALLOWED_ATTRIBUTES, EmailQueue
from booking_durability.adapters.stack_lookup import local_stack, stack_outputs
from booking_durability.errors import InfrastructureError
from booking_durability.operations.dead_letters import (
    DeadLetter,
    QueueKind,
    failure_reason_of,
    message_type_of,
)
from booking_durability.operations.redrive import MoveState, MoveStatus, MoveTaskUnsupported

RECEIVE_BATCH = 10  # SQS's most per receive and per batch request
MAX_MOVE_RATE = 500  # StartMessageMoveTask's MaxNumberOfMessagesPerSecond bound
_OUTPUTS = {
    QueueKind.EMAIL: ("EmailQueueUrl", "EmailDlqUrl"),
    QueueKind.NOTIFICATIONS: ("NotificationsQueueUrl", "NotificationsDlqUrl"),
}


class QueueUnavailable(InfrastructureError):
    """SQS failed a receive, visibility change, delete or count."""

    code = "QUEUE_UNAVAILABLE"


@dataclass(frozen=True)
class QueueCounts:
    visible: int
    in_flight: int
    delayed: int


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
        self._arns: dict[str, str] = {}

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
        """The DLQ's approximate counts (or another queue's, by ``url``)."""
        names = {
            "visible": "ApproximateNumberOfMessages",
            "in_flight": "ApproximateNumberOfMessagesNotVisible",
            "delayed": "ApproximateNumberOfMessagesDelayed",
        }
        attributes = self._call(
            "get_queue_attributes", QueueUrl=url or self.url, AttributeNames=list(names.values())
        )["Attributes"]
        return QueueCounts(**{field: int(attributes.get(name, 0)) for field, name in names.items()})

    def start_move_task(self, per_second: int) -> str:
        """Start SQS's redrive of every letter to the source queue; returns the task handle."""
        try:
            response = self.client.start_message_move_task(
                SourceArn=self._arn(self.url),
                DestinationArn=self._arn(self.source_url),
                MaxNumberOfMessagesPerSecond=max(1, min(per_second, MAX_MOVE_RATE)),
            )
        except NotImplementedError:  # moto in-process
            raise MoveTaskUnsupported("NotImplemented") from None
        except (ClientError, BotoCoreError) as exc:
            # moto server answers 500, a role may lack sqs:StartMessageMoveTask: the loop then moves.
            raise MoveTaskUnsupported(error_code(exc)) from None
        return str(response["TaskHandle"])

    def move_task_status(self) -> MoveStatus:
        results = self._call("list_message_move_tasks", SourceArn=self._arn(self.url), MaxResults=1).get(
            "Results", []
        )
        if not results:
            return MoveStatus(MoveState.FAILED, 0, None, "no move task")
        task = results[0]
        to_move = task.get("ApproximateNumberOfMessagesToMove")
        return MoveStatus(
            state=MoveState(task["Status"]),
            moved=int(task.get("ApproximateNumberOfMessagesMoved", 0)),
            to_move=None if to_move is None else int(to_move),
            failure=task.get("FailureReason"),
        )

    def _arn(self, url: str) -> str:
        """The queue's ARN, read once (a move task's status is polled every few seconds)."""
        if url not in self._arns:
            attributes = self._call("get_queue_attributes", QueueUrl=url, AttributeNames=["QueueArn"])
            self._arns[url] = str(attributes["Attributes"]["QueueArn"])
        return self._arns[url]

    def _letter(self, message: Mapping[str, Any]) -> DeadLetter:
        attributes = contract_attributes(message.get("MessageAttributes") or {})
        body = str(message.get("Body", ""))
        sent_ms = int(message.get("Attributes", {}).get("SentTimestamp", 0))
        return DeadLetter(
            message_id=str(message["MessageId"]),
            sent_at=datetime.fromtimestamp(sent_ms / 1000, UTC),
            failure_reason=failure_reason_of(self.kind, attributes),
            message_type=message_type_of(self.kind, attributes, body),
            attributes=attributes,
            body=body,
            handle=str(message["ReceiptHandle"]),
        )

    def _call(self, operation: str, **parameters: Any) -> Any:
        try:
            return getattr(self.client, operation)(**parameters)
        except (ClientError, BotoCoreError) as exc:
            raise QueueUnavailable(f"{operation} failed: {error_code(exc)}") from None


def contract_attributes(raw: Mapping[str, Any]) -> dict[str, str | int]:
    """The message's CONTRACT §2 attributes (others are ignored), a ``Number`` as an int."""
    attributes: dict[str, str | int] = {}
    for name in ALLOWED_ATTRIBUTES & set(raw):
        value = str(raw[name].get("StringValue", ""))
        numeric = str(raw[name].get("DataType", "")).startswith("Number") and value.isdigit()
        attributes[name] = int(value) if numeric else value
    return attributes


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
