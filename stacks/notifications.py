"""Admin notifications of policy drift: the outbox pipe, the notifications queue and the notifier.

The reservations API writes each drift event as an outbox item (``pk`` ``OUTBOX#<event id>``, the
event's JSON in ``body``) in the same transaction as the confirm's outcome. An EventBridge pipe
reads the table's stream, lets only new outbox items through, and sends each one's ``body`` to
the notifications queue; the notifier delivers it (docs/reference/notifications.md#outbox-and-pipe). Nothing
commits without its notification, and nothing the pipe cannot forward is dropped: it goes to the pipe's DLQ.

Locally there are no pipes: the local stack emulates this one with a stream worker that reads
the pipe's ``FilterCriteria.Filters[].Pattern`` (a JSON string) and
``TargetParameters.InputTemplate`` (a string) from the synthesized template. Both therefore stay
plain literals here, never tokens.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from aws_cdk import Acknowledgment, Duration, Stack, Validations
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_pipes as pipes
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from stacks.function import LAMBDAS_DIR, READ_SECRET_VALUE, SEND_MESSAGE, ServiceFunction
from stacks.monitoring import WatchedDeadLetterQueue, WatchedFunction, WatchedQueue
from stacks.queue_with_dlq import queue_with_dlq
from stacks.reservations_table import PARTITION_KEY
from stacks.runbook import AlarmKey, Page
from stacks.settings import StageSettings

# Powertools service name: the "service" of the notifier's logs and EMF metrics.
NOTIFIER_SERVICE = "notifier"

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
        self.pipe_dlq = self._pipe_dlq(settings)
        self.pipe = self._outbox_pipe(settings, reservations_table)

        self.webhook_secret = self._webhook_secret(settings)
        notifier_settings = settings.notifications.notifier
        self.notifier = ServiceFunction(
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
        self.queues.feed(self.notifier, notifier_settings)
        self.notifier.allow(SEND_MESSAGE, self.dlq.queue_arn)
        if not settings.notifications.webhook:
            # The email channel: an admin_policy_drift email job, the notifier's only channel when
            # no webhook is configured. With a webhook it never publishes there.
            self.notifier.allow(SEND_MESSAGE, email_queue.queue_arn)
        if self.webhook_secret is not None:
            self.notifier.allow(READ_SECRET_VALUE, self.webhook_secret.secret_arn)

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
        self.watched_pipe_dlq = WatchedDeadLetterQueue(
            name="Outbox pipe",
            queue=self.pipe_dlq,
            on_dead_letter=Page(
                AlarmKey.OUTBOX_PIPE_DLQ,
                "The outbox pipe gave up forwarding reservations-table stream records to the "
                "notifications queue: those drift events reached no admin. Each message names the "
                "stream shard and sequence numbers; fix the cause (the pipe's state reason, its "
                "role, the queue), then republish the OUTBOX# items of that period from the table.",
            ),
        )
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

    def _pipe_dlq(self, settings: StageSettings) -> sqs.Queue:
        # Its own queue, not the notifications DLQ: what lands here describes a failed stream
        # batch, not a drift event, and redriving it to the notifier would only fail again.
        queue_settings = settings.notifications_queue
        dlq = sqs.Queue(
            self,
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

    def _outbox_pipe(self, settings: StageSettings, reservations_table: dynamodb.ITable) -> pipes.CfnPipe:
        stream_arn = reservations_table.table_stream_arn
        if stream_arn is None:
            raise ValueError("the reservations table has no stream: the outbox pipe reads it")
        role = iam.Role(
            self,
            "OutboxPipeRole",
            description=f"The outbox pipe: reservations stream to notifications queue ({settings.name})",
            assumed_by=iam.ServicePrincipal(
                "pipes.amazonaws.com",
                conditions={"StringEquals": {"aws:SourceAccount": Stack.of(self).account}},
            ),
            # Inline, so the permissions exist as soon as the role does, before the pipe starts.
            inline_policies={"ForwardOutbox": self._pipe_permissions(stream_arn)},
        )
        return pipes.CfnPipe(
            self,
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
                    dead_letter_config=pipes.CfnPipe.DeadLetterConfigProperty(arn=self.pipe_dlq.queue_arn),
                ),
                filter_criteria=pipes.CfnPipe.FilterCriteriaProperty(
                    filters=[
                        pipes.CfnPipe.FilterProperty(
                            pattern=json.dumps(OUTBOX_FILTER_PATTERN, separators=(",", ":"))
                        )
                    ]
                ),
            ),
            target=self.queue.queue_arn,
            target_parameters=pipes.CfnPipe.PipeTargetParametersProperty(
                input_template=OUTBOX_INPUT_TEMPLATE
            ),
        )

    def _pipe_permissions(self, stream_arn: str) -> iam.PolicyDocument:
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
                    resources=[self.queue.queue_arn],
                ),
                iam.PolicyStatement(
                    sid="SendFailedBatchesToDlq",
                    actions=["sqs:SendMessage"],
                    resources=[self.pipe_dlq.queue_arn],
                ),
            ]
        )

    def _webhook_secret(self, settings: StageSettings) -> secretsmanager.Secret | None:
        # No webhook: nothing to sign. The local stage's loopback sink is configured by the
        # environment instead.
        if not settings.notifications.webhook_secret_in_aws:
            return None
        secret = secretsmanager.Secret(
            self,
            "WebhookSecret",
            description=(
                f"Where the drift notifier ({settings.name}) POSTs and what it signs with: a JSON "
                'object {"url": "https://...", "secret": "whsec_<base64>"}, plus "previous": the '
                "replaced key, for the 24 h of a rotation. The URL may carry the receiver's token. Set "
                "by operators with `aws secretsmanager put-secret-value`; never in code."
            ),
        )
        Validations.of(secret).acknowledge(
            Acknowledgment(
                id="AwsSolutions-SMG4",
                reason=(
                    "The secret is the webhook's URL and signing key, shared with the receiver's "
                    "owner, who must install every new key on their side; no Lambda rotation could "
                    "do that. Operators rotate it with the receiver (the new key with the old one as "
                    "previous for 24 h, during which the notifier signs with both: docs/runbook.md), "
                    "and the notifier picks up each value when its cached copy expires."
                ),
            )
        )
        return secret

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
