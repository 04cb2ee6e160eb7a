"""Each function's settings come from its environment, the way the stack sets them."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from booking_durability.settings.email_consumer import ConsumerSettings
from booking_durability.settings.notifier import NotifierSettings
from booking_durability.settings.reservations_api import ReservationsApiSettings

CONSUMER = {
    "EMAIL_QUEUE_URL": "https://sqs.example/queue",
    "STAGE": "dev",
    "DELIVERIES_TABLE": "deliveries",
    "EMAIL_DLQ_URL": "https://sqs.example/dlq",
}


@pytest.fixture
def consumer_environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name, value in CONSUMER.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


def test_each_field_is_read_from_its_variable_in_upper_case(consumer_environment: pytest.MonkeyPatch) -> None:
    consumer_environment.setenv("SEND_CONCURRENCY", "25")
    consumer_environment.setenv("SMTP_STARTTLS", "true")
    settings = ConsumerSettings.from_environment()
    assert settings.deliveries_table == "deliveries"
    assert settings.send_concurrency == 25
    assert settings.smtp_starttls is True
    # Fields without a variable keep their defaults
    assert settings.lease_seconds == 120


def test_only_the_upper_case_variable_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the field's variable, and another differing only in case
    monkeypatch.setenv("RESERVATIONS_TABLE", "upper")
    monkeypatch.setenv("reservations_table", "lower")
    # Then the upper-case one is read, whatever order the environment lists them in
    assert ReservationsApiSettings.from_environment().reservations_table == "upper"
    monkeypatch.delenv("RESERVATIONS_TABLE")
    with pytest.raises(ValidationError):
        ReservationsApiSettings.from_environment()


def test_a_given_value_wins_over_the_environment(consumer_environment: pytest.MonkeyPatch) -> None:
    assert ConsumerSettings.from_environment(deliveries_table="given").deliveries_table == "given"
    assert ConsumerSettings(deliveries_table="given").stage == "dev"


def test_a_missing_or_invalid_variable_fails_without_echoing_its_value(
    consumer_environment: pytest.MonkeyPatch,
) -> None:
    consumer_environment.setenv("SEND_CONCURRENCY", "secret-looking-value")
    consumer_environment.delenv("STAGE")
    with pytest.raises(ValidationError) as failure:
        ConsumerSettings.from_environment()
    shown = str(failure.value)
    assert "send_concurrency" in shown
    assert "stage" in shown
    assert "secret-looking-value" not in shown


def test_an_empty_variable_is_a_value_except_where_empty_means_unset(
    consumer_environment: pytest.MonkeyPatch,
) -> None:
    # An empty table name is what the environment says (and what a stack bug would look like)
    consumer_environment.setenv("DELIVERIES_TABLE", "")
    assert ConsumerSettings.from_environment().deliveries_table == ""
    # The notifier counts empty variables as unset
    consumer_environment.setenv("NOTIFICATIONS_DLQ_URL", "https://sqs.example/notifications-dlq")
    consumer_environment.setenv("WEBHOOK_SECRET_ARN", "")
    consumer_environment.setenv("ADMIN_EMAIL", "admin@example.test")
    assert NotifierSettings.from_environment().webhook_secret_arn is None
