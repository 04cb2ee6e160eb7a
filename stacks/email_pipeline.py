"""The email pipeline: the email queue, its DLQ, the provider secret and the consumer Lambda."""

from __future__ import annotations

from collections.abc import Sequence
from email.utils import parseaddr

from aws_cdk import Acknowledgment, Validations
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_ses as ses
from constructs import Construct

from stacks.function import LAMBDAS_DIR, READ_SECRET_VALUE, SEND_MESSAGE, ServiceFunction
from stacks.queue_with_dlq import queue_with_dlq
from stacks.runbook import AlarmKey, Page
from stacks.settings import StageSettings
from stacks.watched import OldestMessageAlarm, WatchedFunction, WatchedQueue

# Powertools service name: the "service" dimension of the consumer's EMF metrics.
CONSUMER_SERVICE = "email-consumer"
#: What the consumer's code calls on the deliveries table: each claim and status change is one
#: conditional UpdateItem, and ``suppress_if_sent`` queries the booking's emails.
CONSUMER_LEDGER_ACTIONS = ("dynamodb:Query", "dynamodb:UpdateItem")
#: ... and on its own queue: delayed hops and throttled copies, and each retry's backoff.
CONSUMER_QUEUE_ACTIONS = ("sqs:ChangeMessageVisibility", "sqs:SendMessage")


class EmailPipeline(Construct):
    """Guest emails from the queue to the provider, each delivered at most once.

    Producers (the booking app, the API, the notifier) send jobs to ``queue``. The consumer
    claims each job's dedupe key in the deliveries table, sends, and re-queues a delayed or
    throttled copy itself; it dead-letters with a reason (``failure_reason``) on its own, and
    SQS's redrive after ``max_receive_count`` receives is the backstop for crashes.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: StageSettings,
        layers: Sequence[lambda_.ILayerVersion],
        deliveries_table: dynamodb.ITable,
    ) -> None:
        super().__init__(scope, construct_id)
        self.queues = queue_with_dlq(
            self,
            "Email",
            settings=settings.email_queue,
            visibility_timeout_seconds=settings.consumer.visibility_timeout_seconds,
        )
        self.queue = self.queues.queue
        self.dlq = self.queues.dlq

        self.provider_secret = _provider_secret(self, settings)
        self.consumer = self._consumer(settings, layers, deliveries_table)
        self.watched_queue = self._watched_queue(settings)
        self.watched_consumer = WatchedFunction(
            name="Email consumer",
            function=self.consumer,
            on_errors=Page(
                AlarmKey.EMAIL_CONSUMER_ERRORS,
                "The email consumer failed whole invocations (not single records): SQS redelivers "
                "the batch and dead-letters it after five receives.",
            ),
            on_throttles=Page(
                AlarmKey.EMAIL_CONSUMER_THROTTLES,
                "Lambda throttled the email consumer: its reserved concurrency is used up, so emails "
                "wait in the queue.",
            ),
        )

    def _consumer(
        self,
        settings: StageSettings,
        layers: Sequence[lambda_.ILayerVersion],
        deliveries_table: dynamodb.ITable,
    ) -> ServiceFunction:
        consumer = ServiceFunction(
            self,
            "Consumer",
            settings=settings,
            service=CONSUMER_SERVICE,
            description="Delivers queued booking emails, each dedupe key at most once",
            code_dir=LAMBDAS_DIR / "email_consumer",
            layers=layers,
            environment=self._consumer_environment(settings, deliveries_table),
            timeout_seconds=settings.consumer.timeout_seconds,
            memory_mb=settings.consumer.memory_mb,
            reserved_concurrency=settings.consumer.reserved_concurrency,
            # A long delay is a chain of re-queued hops (900 s each), a week's wait ~670 of them.
            feeds_its_own_trigger=True,
        )
        self.queues.feed(consumer, settings.consumer)
        # Delayed hops and throttled copies go back to the queue; failures to the DLQ with a reason.
        consumer.allow(CONSUMER_QUEUE_ACTIONS, self.queue.queue_arn)
        consumer.allow(SEND_MESSAGE, self.dlq.queue_arn)
        consumer.allow(CONSUMER_LEDGER_ACTIONS, deliveries_table.table_arn)
        if self.provider_secret is not None:
            consumer.allow(READ_SECRET_VALUE, self.provider_secret.secret_arn)
        if settings.delivery.provider == "ses":
            sender_domain = parseaddr(settings.delivery.sender)[1].rpartition("@")[2]
            identity = ses.EmailIdentity.from_email_identity_name(self, "SenderIdentity", sender_domain)
            # SES v2's SendEmail, which the provider calls, is authorized by ses:SendEmail alone.
            consumer.allow(("ses:SendEmail",), identity.email_identity_arn)
        return consumer

    def _watched_queue(self, settings: StageSettings) -> WatchedQueue:
        max_age = settings.email_age_alarm_seconds
        return WatchedQueue(
            name="Email",
            queues=self.queues,
            on_dead_letter=Page(
                AlarmKey.EMAIL_DLQ,
                "Emails are in the DLQ and will not be delivered until redriven: read their "
                "failure_reason attribute, fix the cause, then redrive.",
            ),
            oldest_message=OldestMessageAlarm(
                max_age_seconds=max_age,
                page=Page(
                    AlarmKey.EMAIL_QUEUE_AGE,
                    f"An email has waited in the email queue for more than {max_age} s, longer than "
                    "one delay hop, every retry backoff and one invocation per receive add up to: "
                    "the consumer is not draining the queue (mapping disabled, crashing, throttled) "
                    "and guests' emails are late.",
                ),
            ),
        )

    def _consumer_environment(
        self, settings: StageSettings, deliveries_table: dynamodb.ITable
    ) -> dict[str, str]:
        """The consumer's settings (booking_durability.settings.email_consumer.ConsumerSettings aliases)."""
        delivery = settings.delivery
        environment = {
            "DELIVERIES_TABLE": deliveries_table.table_name,
            "EMAIL_QUEUE_URL": self.queue.queue_url,
            "EMAIL_DLQ_URL": self.dlq.queue_url,
            "MAX_DELAY_HOP_SECONDS": str(delivery.max_delay_hop_seconds),
            "SEND_CONCURRENCY": str(settings.consumer.send_concurrency),
            "BACKOFF_BASE_SECONDS": str(delivery.backoff_base_seconds),
            "THROTTLE_BACKOFF_SECONDS": str(delivery.throttle_backoff_seconds),
            "MAX_THROTTLE_DEFERRALS": str(delivery.max_throttle_deferrals),
            # The consumer dead-letters at the same receive count as SQS's redrive.
            "MAX_RECEIVES": str(settings.email_queue.max_receive_count),
            "LEASE_SECONDS": str(settings.consumer.lease_seconds),
            "EMAIL_PROVIDER": delivery.provider,
            "EMAIL_SENDER": delivery.sender,
        }
        if self.provider_secret is not None:
            # The ARN only: the consumer reads the value on its first send, cached for 5 minutes.
            environment["PROVIDER_SECRET_ARN"] = self.provider_secret.secret_arn
        if delivery.provider == "smtp" and delivery.smtp_host and delivery.smtp_port:
            environment["SMTP_HOST"] = delivery.smtp_host
            environment["SMTP_PORT"] = str(delivery.smtp_port)
        if delivery.resend_base_url:
            environment["RESEND_BASE_URL"] = delivery.resend_base_url
        return environment


def _provider_secret(scope: Construct, settings: StageSettings) -> secretsmanager.Secret | None:
    """The email provider's credentials, made in ``scope``: on stages whose provider needs them."""
    if not settings.delivery.uses_credentials_secret:
        return None
    secret = secretsmanager.Secret(
        scope,
        "ProviderSecret",
        description=(
            f"{settings.delivery.provider} credentials of the booking email consumer "
            f'({settings.name}): a JSON object, e.g. {{"api_key": ...}} for resend or '
            '{"username": ..., "password": ...} for smtp. Set by operators with '
            "`aws secretsmanager put-secret-value`; never in code."
        ),
    )
    Validations.of(secret).acknowledge(
        Acknowledgment(
            id="AwsSolutions-SMG4",
            reason=(
                "The secret holds the email provider's API key, issued and revoked in the "
                "provider's console (Resend has no rotation API Secrets Manager could call); "
                "operators rotate it there and put the new value, which the consumer picks up "
                "when its cached copy expires."
            ),
        )
    )
    return secret
