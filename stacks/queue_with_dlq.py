"""A work queue and its dead-letter queue, made the one way the service makes queues."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration
from aws_cdk import aws_sqs as sqs
from aws_cdk.aws_lambda_event_sources import SqsEventSource
from constructs import Construct

from stacks.settings import QueueConsumerSettings, QueueSettings


@dataclass(frozen=True)
class QueueWithDlq:
    """``queue``, redriven to ``dlq`` after its settings' ``max_receive_count`` receives."""

    queue: sqs.Queue
    dlq: sqs.Queue

    def event_source(self, consumer: QueueConsumerSettings) -> SqsEventSource:
        """``queue`` feeding a function in ``consumer``'s batches, which answers each batch with
        its failed records only (``batchItemFailures``). Adding the source grants the function
        what it needs to receive and delete."""
        window = consumer.max_batching_window_seconds
        return SqsEventSource(
            self.queue,
            batch_size=consumer.batch_size,
            max_batching_window=None if window is None else Duration.seconds(window),
            max_concurrency=consumer.max_concurrency,
            report_batch_item_failures=True,
        )


def queue_with_dlq(
    scope: Construct,
    name: str,
    *,
    settings: QueueSettings,
    visibility_timeout_seconds: int,
) -> QueueWithDlq:
    """``<name>Queue`` and ``<name>Dlq``, made directly in ``scope``.

    Both are encrypted (SQS-managed keys) and refuse requests without TLS. The DLQ keeps
    messages longer than the queue (the settings insist), so a dead letter is still there when
    someone comes to read its reason and redrive it. ``visibility_timeout_seconds`` belongs to
    the queue's consumer: AWS advises six times its function timeout.

    The queues are not wrapped in a construct of their own: their construct ids decide their
    CloudFormation logical ids, and a changed logical id makes a deploy replace the queue and
    delete its messages. ``EmailPipeline/EmailQueue`` and ``EmailPipeline/EmailDlq`` are the ids
    deployed stages have (tests/infrastructure/test_email_pipeline.py holds them).
    """
    dlq = sqs.Queue(
        scope,
        f"{name}Dlq",
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        retention_period=Duration.days(settings.dlq_retention_days),
        max_message_size_bytes=settings.max_message_size_bytes,
    )
    queue = sqs.Queue(
        scope,
        f"{name}Queue",
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        delivery_delay=Duration.seconds(settings.delivery_delay_seconds),
        visibility_timeout=Duration.seconds(visibility_timeout_seconds),
        retention_period=Duration.days(settings.retention_days),
        max_message_size_bytes=settings.max_message_size_bytes,
        dead_letter_queue=sqs.DeadLetterQueue(queue=dlq, max_receive_count=settings.max_receive_count),
    )
    return QueueWithDlq(queue=queue, dlq=dlq)
