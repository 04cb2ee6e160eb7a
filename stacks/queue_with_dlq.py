"""A work queue and its dead-letter queue, made the one way the service makes queues."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from stacks.settings import QueueSettings


class QueueWithDlq(Construct):
    """``queue``, redriven to ``dlq`` after ``settings.max_receive_count`` receives.

    Both are encrypted (SQS-managed keys) and refuse requests without TLS. The DLQ keeps
    messages longer than the queue (the settings insist), so a dead letter is still there when
    someone comes to read its reason and redrive it. ``visibility_timeout_seconds`` belongs to
    the queue's consumer: AWS advises six times its function timeout.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: QueueSettings,
        visibility_timeout_seconds: int,
    ) -> None:
        super().__init__(scope, construct_id)
        self.settings = settings
        self.dlq = sqs.Queue(
            self,
            "Dlq",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(settings.dlq_retention_days),
            max_message_size_bytes=settings.max_message_size_bytes,
        )
        self.queue = sqs.Queue(
            self,
            "Queue",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            delivery_delay=Duration.seconds(settings.delivery_delay_seconds),
            visibility_timeout=Duration.seconds(visibility_timeout_seconds),
            retention_period=Duration.days(settings.retention_days),
            max_message_size_bytes=settings.max_message_size_bytes,
            dead_letter_queue=sqs.DeadLetterQueue(
                queue=self.dlq, max_receive_count=settings.max_receive_count
            ),
        )
