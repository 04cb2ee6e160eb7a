"""The notifier's settings and wiring: one channel, fully configured, chosen at cold start."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError
from standardwebhooks import Webhook

from booking_durability import wiring
from booking_durability.drift_events import PolicyDriftData
from booking_durability.notifications.email_channel import EmailChannel
from booking_durability.notifications.webhook import InvalidWebhookSecret, WebhookChannel
from booking_durability.settings.notifier import NotifierSettings
from booking_durability.wiring.notifier import build_notifier, notifier
from tests.unit.notifications.builders import (
    ADMIN_EMAIL,
    OTHER_SECRET,
    SECRET,
    FakeTransport,
    as_body,
    drift_event,
)

ROOT = Path(__file__).resolve().parents[3]
DLQ = "https://sqs.eu-west-1.amazonaws.com/123456789012/notifications-dlq"
EMAIL_QUEUE = "https://sqs.eu-west-1.amazonaws.com/123456789012/email"
NAMES = (
    "NOTIFICATIONS_DLQ_URL",
    "MAX_RECEIVES",
    "WEBHOOK_URL",
    "WEBHOOK_SECRET",
    "WEBHOOK_SECRET_ARN",
    "WEBHOOK_PREVIOUS_SECRET",
    "WEBHOOK_TIMEOUT_SECONDS",
    "ADMIN_EMAIL",
    "EMAIL_QUEUE_URL",
    "MAX_DELAY_HOP_SECONDS",
)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    for name in NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("NOTIFICATIONS_DLQ_URL", DLQ)
    wiring.reset()
    yield monkeypatch
    wiring.reset()


def test_a_webhook_with_a_local_secret_is_the_channel(env: pytest.MonkeyPatch) -> None:
    env.setenv("WEBHOOK_URL", "http://127.0.0.1:8025/hooks")
    env.setenv("WEBHOOK_SECRET", SECRET)
    env.setenv("ADMIN_EMAIL", ADMIN_EMAIL)  # a webhook wins when both are configured
    env.setenv("EMAIL_QUEUE_URL", EMAIL_QUEUE)
    built = notifier()
    assert isinstance(built.channel, WebhookChannel)
    assert built.policy.max_receives == 5
    assert notifier() is built  # once per execution environment


def test_without_a_webhook_the_admins_email_is_the_channel(env: pytest.MonkeyPatch) -> None:
    env.setenv("WEBHOOK_URL", "")  # an empty variable counts as unset
    env.setenv("ADMIN_EMAIL", ADMIN_EMAIL)
    env.setenv("EMAIL_QUEUE_URL", EMAIL_QUEUE)
    env.setenv("MAX_DELAY_HOP_SECONDS", "5")
    channel = notifier().channel
    assert isinstance(channel, EmailChannel)
    assert channel.admin.email == ADMIN_EMAIL
    assert channel.max_hop_seconds == 5


def test_a_webhook_in_aws_reads_its_url_and_secret_only_when_first_used(env: pytest.MonkeyPatch) -> None:
    # Only the secret's ARN is in the environment: the URL is in the secret
    env.setenv("WEBHOOK_SECRET_ARN", "arn:aws:secretsmanager:eu-west-1:123456789012:secret:hook")
    # No Secrets Manager here: building must not call it
    assert isinstance(notifier().channel, WebhookChannel)


@pytest.mark.parametrize(
    ("variables", "complaint"),
    [
        ({"WEBHOOK_URL": "http://127.0.0.1:8025/"}, "WEBHOOK_SECRET_ARN"),
        ({"WEBHOOK_SECRET_ARN": "arn", "WEBHOOK_URL": "http://127.0.0.1:8025/"}, "unset WEBHOOK_URL"),
        ({"WEBHOOK_SECRET_ARN": "arn", "WEBHOOK_SECRET": SECRET}, "unset WEBHOOK_SECRET"),
        ({"WEBHOOK_SECRET_ARN": "arn", "WEBHOOK_PREVIOUS_SECRET": SECRET}, "unset WEBHOOK_PREVIOUS_SECRET"),
        # A URL off the machine is never configured by the environment: in AWS it is a secret
        ({"WEBHOOK_URL": "https://hooks.example.test/tok_in_path", "WEBHOOK_SECRET": SECRET}, "webhook_url"),
        ({}, "ADMIN_EMAIL"),
        ({"ADMIN_EMAIL": ADMIN_EMAIL}, "EMAIL_QUEUE_URL"),
        ({"WEBHOOK_URL": "ftp://127.0.0.1/", "WEBHOOK_SECRET": SECRET}, "webhook_url"),
    ],
)
def test_a_half_configured_notifier_fails_its_cold_start(
    env: pytest.MonkeyPatch, variables: dict[str, str], complaint: str
) -> None:
    for name, value in variables.items():
        env.setenv(name, value)
    with pytest.raises(ValidationError, match=complaint) as raised:
        NotifierSettings()
    assert SECRET not in str(raised.value)
    assert "tok_in_path" not in str(raised.value)


def test_settings_never_show_the_secret_the_url_or_the_address(env: pytest.MonkeyPatch) -> None:
    env.setenv("WEBHOOK_URL", "http://127.0.0.1:8025/tok_in_path")
    env.setenv("WEBHOOK_SECRET", SECRET)
    env.setenv("WEBHOOK_PREVIOUS_SECRET", OTHER_SECRET)
    env.setenv("ADMIN_EMAIL", ADMIN_EMAIL)
    shown = repr(NotifierSettings())
    assert SECRET not in shown
    assert OTHER_SECRET not in shown
    assert "tok_in_path" not in shown
    assert ADMIN_EMAIL not in shown


@pytest.mark.parametrize("variable", ["WEBHOOK_SECRET", "WEBHOOK_PREVIOUS_SECRET"])
def test_a_malformed_local_secret_fails_the_cold_start(env: pytest.MonkeyPatch, variable: str) -> None:
    env.setenv("WEBHOOK_URL", "http://127.0.0.1:8025/")
    env.setenv("WEBHOOK_SECRET", SECRET)
    env.setenv(variable, "not-a-whsec-secret")
    with pytest.raises(InvalidWebhookSecret) as raised:
        build_notifier(NotifierSettings())
    assert "not-a-whsec-secret" not in str(raised.value)


def test_locally_a_previous_secret_from_the_environment_signs_beside_the_current_one(
    env: pytest.MonkeyPatch,
) -> None:
    # Given the local stack's webhook, rotated: WEBHOOK_PREVIOUS_SECRET beside WEBHOOK_SECRET
    env.setenv("WEBHOOK_URL", "http://127.0.0.1:8025/hooks")
    env.setenv("WEBHOOK_SECRET", OTHER_SECRET)
    env.setenv("WEBHOOK_PREVIOUS_SECRET", SECRET)
    channel = notifier().channel
    assert isinstance(channel, WebhookChannel)
    transport = FakeTransport()
    channel.transport = transport
    # When an event is delivered
    body = as_body(drift_event())
    channel.deliver(PolicyDriftData.model_validate_json(body), body)
    # Then it goes to the local URL, and verifies with either secret
    [posted] = transport.posted
    assert posted.url == "http://127.0.0.1:8025/hooks"
    for secret in (SECRET, OTHER_SECRET):
        Webhook(secret).verify(posted.body, posted.headers)


def test_a_malformed_admin_address_fails_the_cold_start_without_quoting_it(env: pytest.MonkeyPatch) -> None:
    env.setenv("ADMIN_EMAIL", "ops-admin-at-example")
    env.setenv("EMAIL_QUEUE_URL", EMAIL_QUEUE)
    with pytest.raises(ValidationError) as raised:
        build_notifier(NotifierSettings())
    assert "ops-admin-at-example" not in str(raised.value)


def test_a_notifier_with_a_webhook_never_imports_the_email_models() -> None:
    # Given a fresh interpreter, as a cold start: the handler imported, its notifier built
    script = (
        "import sys; sys.path.insert(0, 'lambdas/notifier'); import handler; "
        "from booking_durability.wiring.notifier import notifier; notifier(); "
        "print(sorted(m for m in sys.modules if m == 'email_validator' or m.startswith("
        "('booking_durability.emails.models', 'booking_durability.emails.producer', "
        "'booking_durability.emails.dispatch', 'booking_durability.notifications.email_channel'))))"
    )
    environment = {
        **{name: value for name, value in os.environ.items() if name not in NAMES},
        "AWS_DEFAULT_REGION": "eu-west-1",
        "NOTIFICATIONS_DLQ_URL": DLQ,
        "WEBHOOK_URL": "http://127.0.0.1:8025/hooks",
        "WEBHOOK_SECRET": SECRET,
    }
    ran = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=environment, capture_output=True, text=True, check=True
    )
    assert ran.stdout.strip() == "[]"
