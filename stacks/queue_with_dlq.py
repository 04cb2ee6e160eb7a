"""A work queue and its dead-letter queue, made the one way the service makes queues."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration, Names
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from stacks.function import ServiceFunction
from stacks.settings import QueueConsumerSettings, QueueSettings

#: What the event source mapping's poller does with the consuming function's role: receive
#: batches, delete what the function reported done, read the queue's attributes (AWS's
#: documented minimum). Whatever else the function does with the queue, its code does.
POLLING_ACTIONS = ("sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage")


@dataclass(frozen=True)
class QueueWithDlq:
    """``queue``, redriven to ``dlq`` after its settings' ``max_receive_count`` receives."""

    queue: sqs.Queue
    dlq: sqs.Queue

    def feed(self, consumer: ServiceFunction, settings: QueueConsumerSettings) -> None:
        """``queue`` feeding ``consumer`` in ``settings``' batches, which answers each batch with
        its failed records only (``batchItemFailures``); its role may poll the queue, no more.

        Made as the CDK's ``SqsEventSource`` makes it, under the same construct id (so deployed
        mappings keep their logical id), without the source's grant: that one adds
        ``GetQueueUrl`` and ``ChangeMessageVisibility``, which polling does not need.
        """
        window = settings.max_batching_window_seconds
        consumer.function.add_event_source_mapping(
            f"SqsEventSource:{Names.node_unique_id(self.queue.node)}",
            event_source_arn=self.queue.queue_arn,
            batch_size=settings.batch_size,
            max_batching_window=None if window is None else Duration.seconds(window),
            max_concurrency=settings.max_concurrency,
            report_batch_item_failures=True,
        )
        consumer.allow(POLLING_ACTIONS, self.queue.queue_arn)


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
