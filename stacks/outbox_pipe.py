"""The outbox pipe: each new outbox item of the reservations table, to the notifications queue.

The reservations API writes each drift event as an outbox item (``pk`` ``OUTBOX#<event id>``, the
event's JSON in ``body``) in the same transaction as the confirm's outcome. An EventBridge pipe
reads the table's stream, lets only new outbox items through, and sends each one's ``body`` to
the notifications queue (docs/reference/notifications.md#outbox-and-pipe). Nothing the pipe
cannot forward is dropped: it goes to the pipe's own DLQ.

Locally there are no pipes: the local stack emulates this one with a stream worker that reads
the pipe's ``FilterCriteria.Filters[].Pattern`` (a JSON string) and
``TargetParameters.InputTemplate`` (a string) from the synthesized template. Both therefore stay
plain literals here, never tokens.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from aws_cdk import Acknowledgment, Duration, Stack, Validations
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_pipes as pipes
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from stacks.reservations_table import PARTITION_KEY
from stacks.runbook import AlarmKey, Page
from stacks.settings import StageSettings
from stacks.watched import WatchedDeadLetterQueue

#: The partition key prefix of outbox items in the reservations table.
OUTBOX_KEY_PREFIX = "OUTBOX#"
#: Only new outbox items pass: an INSERT whose partition key starts with ``OUTBOX#``. A MODIFY, or
#: the REMOVE of an expired outbox item (TTL), is never a new event.
OUTBOX_FILTER_PATTERN = {
    "eventName": ["INSERT"],
    "dynamodb": {"Keys": {PARTITION_KEY: {"S": [{"prefix": OUTBOX_KEY_PREFIX}]}}},
}
#: Each message body is exactly the outbox item's ``body`` string: the drift event's JSON.
OUTBOX_INPUT_TEMPLATE = "<$.dynamodb.NewImage.body.S>"
#: Where a new pipe starts reading: the oldest record the stream holds (24 h), not the next one.
#: A pipe is created (or replaced) while the API may already be writing outbox items, for
#: instance in the deploy that brings both; with LATEST every item committed before the pipe's
#: first poll would never be notified. Starting early can only repeat an event, and the
#: notifier's ``webhook-id`` (the event's id) lets a receiver drop the repeat.
OUTBOX_STARTING_POSITION = "TRIM_HORIZON"


@dataclass(frozen=True)
class OutboxPipe:
    """The pipe, and its DLQ: what it could not forward, as a description of the failed stream
    batch (shard, sequence numbers), not the event, whose outbox item stays in the table."""

    pipe: pipes.CfnPipe
    dlq: sqs.Queue

    @property
    def watched_dlq(self) -> WatchedDeadLetterQueue:
        return WatchedDeadLetterQueue(
            name="Outbox pipe",
            queue=self.dlq,
            on_dead_letter=Page(
                AlarmKey.OUTBOX_PIPE_DLQ,
                "The outbox pipe gave up forwarding reservations-table stream records to the "
                "notifications queue: those drift events reached no admin. Each message names the "
                "stream shard and sequence numbers; fix the cause (the pipe's state reason, its "
                "role, the queue), then republish the OUTBOX# items of that period from the table.",
            ),
        )


def outbox_pipe(
    scope: Construct, *, settings: StageSettings, reservations_table: dynamodb.ITable, queue: sqs.IQueue
) -> OutboxPipe:
    """The pipe from ``reservations_table``'s stream to ``queue``, and its DLQ, made in ``scope``."""
    dlq = _pipe_dlq(scope, settings)
    return OutboxPipe(pipe=_pipe(scope, settings, reservations_table, queue, dlq), dlq=dlq)


def _pipe_dlq(scope: Construct, settings: StageSettings) -> sqs.Queue:
    # Its own queue, not the notifications DLQ: what lands here describes a failed stream
    # batch, not a drift event, and redriving it to the notifier would only fail again.
    queue_settings = settings.notifications_queue
    dlq = sqs.Queue(
        scope,
        "OutboxPipeDlq",
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        retention_period=Duration.days(queue_settings.dlq_retention_days),
    )
    Validations.of(dlq).acknowledge(
        Acknowledgment(
            id="AwsSolutions-SQS3",
            reason=(
                "This queue is a dead-letter queue itself: the outbox pipe's DeadLetterConfig "
                "names it, which cdk-nag does not recognize (it only counts queues named in "
                "another queue's RedrivePolicy); its depth alarm pages the operator."
            ),
        )
    )
    return dlq


def _pipe(
    scope: Construct,
    settings: StageSettings,
    reservations_table: dynamodb.ITable,
    queue: sqs.IQueue,
    dlq: sqs.IQueue,
) -> pipes.CfnPipe:
    stream_arn = reservations_table.table_stream_arn
    if stream_arn is None:
        raise ValueError("the reservations table has no stream: the outbox pipe reads it")
    role = iam.Role(
        scope,
        "OutboxPipeRole",
        description=f"The outbox pipe: reservations stream to notifications queue ({settings.name})",
        assumed_by=iam.ServicePrincipal(
            "pipes.amazonaws.com",
            conditions={"StringEquals": {"aws:SourceAccount": Stack.of(scope).account}},
        ),
        # Inline, so the permissions exist as soon as the role does, before the pipe starts.
        inline_policies={"ForwardOutbox": _pipe_permissions(stream_arn, queue, dlq)},
    )
    return pipes.CfnPipe(
        scope,
        "OutboxPipe",
        description="Sends each new OUTBOX# item of the reservations table to the notifications queue",
        role_arn=role.role_arn,
        source=stream_arn,
        source_parameters=pipes.CfnPipe.PipeSourceParametersProperty(
            dynamo_db_stream_parameters=pipes.CfnPipe.PipeSourceDynamoDBStreamParametersProperty(
                starting_position=OUTBOX_STARTING_POSITION,
                batch_size=settings.notifications.pipe_batch_size,
                maximum_retry_attempts=settings.notifications.pipe_retry_attempts,
                # Age never discards a record: the retries decide, then the DLQ gets it.
                maximum_record_age_in_seconds=-1,
                # A batch that fails is halved until the failing record is alone, so one bad
                # record never sends its neighbours to the DLQ.
                on_partial_batch_item_failure="AUTOMATIC_BISECT",
                dead_letter_config=pipes.CfnPipe.DeadLetterConfigProperty(arn=dlq.queue_arn),
            ),
            filter_criteria=pipes.CfnPipe.FilterCriteriaProperty(
                filters=[
                    pipes.CfnPipe.FilterProperty(
                        pattern=json.dumps(OUTBOX_FILTER_PATTERN, separators=(",", ":"))
                    )
                ]
            ),
        ),
        target=queue.queue_arn,
        target_parameters=pipes.CfnPipe.PipeTargetParametersProperty(input_template=OUTBOX_INPUT_TEMPLATE),
    )


def _pipe_permissions(stream_arn: str, queue: sqs.IQueue, dlq: sqs.IQueue) -> iam.PolicyDocument:
    """Read that one stream, send to the queue and to the pipe's DLQ: nothing else.

    dynamodb:ListStreams, which AWS's Pipes guide also lists, is left out: it takes no
    resource-level permission (it would need Resource "*"), and this pipe is handed its one
    stream by ARN. The queues use SQS-managed encryption, so no KMS permission is needed.
    """
    return iam.PolicyDocument(
        statements=[
            iam.PolicyStatement(
                sid="ReadReservationsStream",
                actions=["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"],
                resources=[stream_arn],
            ),
            iam.PolicyStatement(
                sid="SendToNotificationsQueue",
                actions=["sqs:SendMessage"],
                resources=[queue.queue_arn],
            ),
            iam.PolicyStatement(
                sid="SendFailedBatchesToDlq",
                actions=["sqs:SendMessage"],
                resources=[dlq.queue_arn],
            ),
        ]
    )
