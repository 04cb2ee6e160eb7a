"""A provider secret that cannot be used is ``provider_not_configured`` (README.md, "How delivery
stays exactly-once"): retried like a transient failure with its claim handed back, counted,
and dead-lettered with that reason when the retries run out. The secret is moto's Secrets
Manager, read through the consumer's own wiring.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters

from booking_durability.emails.delivery import EmailDelivery, EmailOutcome, IncomingMessage, RetryLater
from booking_durability.observability import metrics
from booking_durability.wiring.email_consumer import configured_provider
from devstack.http_provider import HttpProviderDouble
from tests.builders import job
from tests.integration.conftest import (
    REGION,
    Clock,
    Resources,
    ScriptedProvider,
    consumer_settings,
    make_delivery,
)

API_KEY = "re_live_key_never_logged"


def secrets() -> Any:
    return boto3.client("secretsmanager", region_name=REGION)


def placeholder() -> str:
    """What the stack's secret holds until an operator puts a value: CloudFormation has Secrets
    Manager generate one with its defaults (``GenerateSecretString: {}`` in the template)."""
    return str(secrets().get_random_password()["RandomPassword"])


def stored(value: str) -> str:
    return str(secrets().create_secret(Name="booking-durability/email-provider", SecretString=value)["ARN"])


@pytest.fixture(autouse=True)
def fresh_cache() -> Iterator[None]:
    parameters.clear_caches()
    metrics.clear_metrics()
    yield
    parameters.clear_caches()
    metrics.clear_metrics()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def double() -> Iterator[HttpProviderDouble]:
    with HttpProviderDouble(api_key=API_KEY) as running:
        yield running


@pytest.fixture
def consumer(
    resources: Resources, clock: Clock, double: HttpProviderDouble
) -> Callable[[str], EmailDelivery]:
    """The consumer sending through Resend (the HTTP double) with the secret ``arn`` names."""

    def build(arn: str) -> EmailDelivery:
        delivery = make_delivery(resources, ScriptedProvider(), clock)
        settings = consumer_settings(
            resources, EMAIL_PROVIDER="resend", PROVIDER_SECRET_ARN=arn, RESEND_BASE_URL=double.url
        )
        delivery.sending.provider = configured_provider(settings)
        return delivery

    return build


def message(body: dict[str, Any], receive_count: int) -> IncomingMessage:
    return IncomingMessage("m-1", "rh-1", json.dumps(body), receive_count=receive_count)


CASES = {
    "missing": lambda: "arn:aws:secretsmanager:eu-west-1:123456789012:secret:booking-durability/nope-AbCdEf",
    "placeholder": lambda: stored(placeholder()),
    "not_json": lambda: stored(f"api_key: {API_KEY}"),
    "not_object": lambda: stored(json.dumps([API_KEY])),
    "no_api_key": lambda: stored(json.dumps({"username": "bookings", "password": API_KEY})),
}


@pytest.mark.parametrize("cause", sorted(CASES))
def test_an_unusable_secret_is_retried_with_the_claim_handed_back_then_dead_lettered(
    resources: Resources, consumer: Callable[[str], EmailDelivery], cause: str, log_lines: io.StringIO
) -> None:
    # Given the provider secret is missing, still the deploy's placeholder, or not what Resend needs
    delivery = consumer(CASES[cause]())
    body = job()
    # When the email is received, before its last receive
    with pytest.raises(RetryLater):
        delivery.deliver(message(body, receive_count=1))
    # Then nothing was sent, the key is handed back, and the failure is counted and says why
    assert resources.status("bk_123", "booking_confirmed#0") == "queued"
    assert metrics.metric_set["EmailProviderNotConfigured"]["Value"] == [1.0]
    assert "EmailTransientFailure" not in metrics.metric_set  # not a provider outage
    [line] = [json.loads(text) for text in log_lines.getvalue().splitlines() if "not configured" in text]
    assert (line["level"], line["cause"]) == ("WARNING", cause)
    # And at its last receive it is dead-lettered with that reason, and recorded failed
    assert delivery.deliver(message(body, receive_count=5)) is EmailOutcome.DEAD_LETTERED
    [dead] = resources.drain(resources.dlq_url)
    assert dead["MessageAttributes"]["failure_reason"]["StringValue"] == "provider_not_configured"
    assert resources.status("bk_123", "booking_confirmed#0") == "failed"
    # And no part of the secret reached a log line
    assert API_KEY not in log_lines.getvalue()


def test_once_the_secret_is_put_the_next_receive_sends(
    resources: Resources, consumer: Callable[[str], EmailDelivery], double: HttpProviderDouble
) -> None:
    # Given the secret still holds the deploy's placeholder
    arn = stored(placeholder())
    delivery = consumer(arn)
    body = job()
    with pytest.raises(RetryLater):
        delivery.deliver(message(body, receive_count=1))
    # When an operator puts the API key (and the cached value expires)
    secrets().put_secret_value(SecretId=arn, SecretString=json.dumps({"api_key": API_KEY}))
    parameters.clear_caches()
    # Then the next receive claims the key again and sends, authenticated with it
    assert delivery.deliver(message(body, receive_count=2)) is EmailOutcome.SENT
    assert [d.idempotency_key for d in double.deliveries] == ["bk_123#booking_confirmed#0"]
