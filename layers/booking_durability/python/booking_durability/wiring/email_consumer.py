"""The email consumer's dependencies: settings, ledger, queues, provider, thread pool."""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor

from booking_durability.adapters import aws
from booking_durability.adapters.deliveries_table import DeliveryLedger
from booking_durability.adapters.dynamodb import DynamoTable
from booking_durability.adapters.email_queue import EmailQueue
from booking_durability.adapters.secrets import Rotating, SecretUnreadable, secret_json
from booking_durability.emails.consumer import Consumer
from booking_durability.emails.delivery import EmailDelivery
from booking_durability.emails.dispatch import Dispatch
from booking_durability.emails.failure_policy import FailurePolicy
from booking_durability.emails.providers import EmailProvider, ProviderNotConfigured, build_provider
from booking_durability.emails.sending import Sending
from booking_durability.settings.email_consumer import ConsumerSettings
from booking_durability.wiring import Wired


def build_delivery(settings: ConsumerSettings) -> EmailDelivery:
    """The delivery logic wired to AWS as ``settings`` say."""
    sqs = aws.client("sqs")
    ledger = DeliveryLedger(DynamoTable(settings.deliveries_table, aws.client("dynamodb")))
    dispatch = Dispatch(
        queue=EmailQueue(settings.email_queue_url, sqs),
        dlq=EmailQueue(settings.email_dlq_url, sqs),
        max_hop_seconds=settings.max_delay_hop_seconds,
    )
    sending = Sending(
        ledger=ledger,
        dispatch=dispatch,
        provider=configured_provider(settings),
        policy=failure_policy(settings),
        sender=settings.email_sender,
    )
    return EmailDelivery(
        ledger=ledger, dispatch=dispatch, sending=sending, lease_seconds=settings.lease_seconds
    )


def configured_provider(settings: ConsumerSettings) -> Rotating[EmailProvider]:
    """The provider ``settings`` name, with the credentials its secret holds now.

    Raises ``ProviderNotConfigured`` while the secret is missing, still the deploy-time
    placeholder, unreadable or lacking a key (until a provider was built: then that one keeps
    serving, see ``Rotating``).
    """

    def credentials() -> Mapping[str, str]:
        try:
            return secret_json(settings.provider_secret_arn)
        except SecretUnreadable as exc:
            raise ProviderNotConfigured(settings.email_provider, exc.cause) from None

    return Rotating(credentials, lambda values: build_provider(settings, values))


def failure_policy(settings: ConsumerSettings) -> FailurePolicy:
    return FailurePolicy(
        backoff_base_seconds=settings.backoff_base_seconds,
        max_receives=settings.max_receives,
        throttle_backoff_seconds=settings.throttle_backoff_seconds,
        max_throttle_deferrals=settings.max_throttle_deferrals,
        provider_timeout_seconds=settings.provider_timeout_seconds,
    )


def _build() -> Consumer:
    settings = ConsumerSettings.from_environment()
    return Consumer(
        delivery=build_delivery(settings),
        pool=ThreadPoolExecutor(max_workers=settings.send_concurrency, thread_name_prefix="email-send"),
    )


consumer = Wired(_build)
