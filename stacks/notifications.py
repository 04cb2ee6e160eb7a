"""Admin notifications of policy drift: the notifications queue and the notifier.

The outbox pipe (``stacks/outbox_pipe.py``) feeds the queue one message per drift event the
reservations API committed; the notifier delivers each one (docs/reference/notifications.md#outbox-and-pipe),
signed to the stage's webhook (its secret: ``stacks/webhook_secret.py``), or as an email job.
Nothing commits without its notification, and nothing the pipe cannot forward is dropped.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from stacks.function import LAMBDAS_DIR, READ_SECRET_VALUE, SEND_MESSAGE, ServiceFunction
from stacks.outbox_pipe import outbox_pipe
from stacks.queue_with_dlq import queue_with_dlq
from stacks.runbook import AlarmKey, Page
from stacks.settings import StageSettings
from stacks.watched import WatchedFunction, WatchedQueue
from stacks.webhook_secret import webhook_secret

# Powertools service name: the "service" of the notifier's logs and EMF metrics.
NOTIFIER_SERVICE = "notifier"


class DriftNotifications(Construct):
    """Policy-drift events from the reservations table's outbox to the admins
    (docs/reference/notifications.md#outbox-and-pipe).

    ``queue`` (with its ``dlq``, after ``max_receive_count`` receives) holds one message per
    drift event. The notifier POSTs each one to the stage's webhook, signed, or, with no webhook
    configured, publishes an ``admin_policy_drift`` email job to ``email_queue``. It dead-letters
    with a ``failure_reason`` itself; SQS's redrive is the backstop for crashes. ``pipe_dlq``
    receives what the pipe could not forward: a description of the failed stream batch (shard,
    sequence numbers), not the event, whose outbox item stays in the table to be republished.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: StageSettings,
        layers: Sequence[lambda_.ILayerVersion],
        reservations_table: dynamodb.ITable,
        email_queue: sqs.IQueue,
    ) -> None:
        super().__init__(scope, construct_id)
        self.queues = queue_with_dlq(
            self,
            "Notifications",
            settings=settings.notifications_queue,
            visibility_timeout_seconds=settings.notifications.notifier.visibility_timeout_seconds,
        )
        self.queue = self.queues.queue
        self.dlq = self.queues.dlq
        outbox = outbox_pipe(self, settings=settings, reservations_table=reservations_table, queue=self.queue)
        self.pipe_dlq = outbox.dlq
        self.pipe = outbox.pipe
        self.webhook_secret = webhook_secret(self, settings)
        self.notifier = self._notifier(settings, layers, email_queue)

        self.watched_queue = WatchedQueue(
            name="Notifications",
            queues=self.queues,
            on_dead_letter=Page(
                AlarmKey.NOTIFICATIONS_DLQ,
                "Policy-drift notifications are in the notifications DLQ: the admins were not told. "
                "Read each message's failure_reason attribute (webhook_unreachable, "
                "webhook_rejected, invalid_event, channel_unavailable), fix the webhook, its "
                "secret, the email queue or the event, then redrive.",
            ),
        )
        self.watched_pipe_dlq = outbox.watched_dlq
        self.watched_notifier = WatchedFunction(
            name="Notifier",
            function=self.notifier,
            on_errors=Page(
                AlarmKey.NOTIFIER_ERRORS,
                "The notifier failed whole invocations (not single records): SQS redelivers the "
                "batch and dead-letters it after five receives; admins hear of no drift meanwhile.",
            ),
            on_throttles=Page(
                AlarmKey.NOTIFIER_THROTTLES,
                "Lambda throttled the notifier: its reserved concurrency is used up, so drift "
                "notifications wait in the notifications queue.",
            ),
        )

    def _notifier(
        self, settings: StageSettings, layers: Sequence[lambda_.ILayerVersion], email_queue: sqs.IQueue
    ) -> ServiceFunction:
        notifier_settings = settings.notifications.notifier
        notifier = ServiceFunction(
            self,
            "Notifier",
            settings=settings,
            service=NOTIFIER_SERVICE,
            description="Tells the admins of policy drift at confirmation: signed webhook, else email",
            code_dir=LAMBDAS_DIR / "notifier",
            layers=layers,
            environment=self._notifier_environment(settings, email_queue),
            timeout_seconds=notifier_settings.timeout_seconds,
            memory_mb=notifier_settings.memory_mb,
            reserved_concurrency=notifier_settings.reserved_concurrency,
        )
        self.queues.feed(notifier, notifier_settings)
        notifier.allow(SEND_MESSAGE, self.dlq.queue_arn)
        if not settings.notifications.webhook:
            # The email channel: an admin_policy_drift email job, the notifier's only channel when
            # no webhook is configured. With a webhook it never publishes there.
            notifier.allow(SEND_MESSAGE, email_queue.queue_arn)
        if self.webhook_secret is not None:
            notifier.allow(READ_SECRET_VALUE, self.webhook_secret.secret_arn)
        return notifier

    def _notifier_environment(self, settings: StageSettings, email_queue: sqs.IQueue) -> dict[str, str]:
        """The notifier's settings (booking_durability.settings.notifier.NotifierSettings aliases)."""
        notifications = settings.notifications
        environment = {
            "NOTIFICATIONS_DLQ_URL": self.dlq.queue_url,
            # The notifier dead-letters at the same receive count as SQS's redrive.
            "MAX_RECEIVES": str(settings.notifications_queue.max_receive_count),
            "WEBHOOK_TIMEOUT_SECONDS": str(notifications.webhook_timeout_seconds),
        }
        if not notifications.webhook:
            # The email channel's settings. A webhook stage never builds that channel, so its
            # notifier carries no admin address (personal data) and no email queue.
            environment["ADMIN_EMAIL"] = notifications.admin_email
            environment["EMAIL_QUEUE_URL"] = email_queue.queue_url
            environment["MAX_DELAY_HOP_SECONDS"] = str(settings.delivery.max_delay_hop_seconds)
        elif self.webhook_secret is not None:
            # The ARN only: the notifier reads the URL and keys when it first sends, and caches them.
            environment["WEBHOOK_SECRET_ARN"] = self.webhook_secret.secret_arn
        elif notifications.local_webhook_url and notifications.local_webhook_secret:
            # The local stage's loopback sink and its published development secret.
            environment["WEBHOOK_URL"] = notifications.local_webhook_url
            environment["WEBHOOK_SECRET"] = notifications.local_webhook_secret
        return environment
