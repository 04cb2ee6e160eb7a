"""Stage settings: the synth-time checks that keep a wrong number from being deployed."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from stacks.settings import (
    DEFAULT_STAGE,
    STAGE_NAMES,
    StageSettings,
    StageSettingsError,
    stage_settings,
)


def _with_consumer(settings: StageSettings, **changes: int) -> StageSettings:
    return dataclasses.replace(settings, consumer=dataclasses.replace(settings.consumer, **changes))


def _with_delivery(settings: StageSettings, **changes: Any) -> StageSettings:
    return dataclasses.replace(settings, delivery=dataclasses.replace(settings.delivery, **changes))


def test_the_three_stages_exist_and_dev_is_the_default() -> None:
    # Given / When the stage names a developer can pass with -c stage=...
    # Then dev, prod and local each build, and dev is what an unqualified synth deploys
    assert set(STAGE_NAMES) == {"dev", "prod", "local"}
    assert DEFAULT_STAGE == "dev"
    assert stage_settings().name == "dev"
    assert {stage_settings(name).stack_name for name in STAGE_NAMES} == {
        "BookingDurability-dev",
        "BookingDurability-prod",
        "BookingDurability-local",
    }


def test_an_unknown_stage_is_refused_with_the_valid_choices() -> None:
    # When a typo reaches the synth
    with pytest.raises(StageSettingsError) as refused:
        stage_settings("staging")
    # Then the message says what to type instead
    assert "staging" in str(refused.value)
    assert all(name in str(refused.value) for name in STAGE_NAMES)


@pytest.mark.parametrize("name", STAGE_NAMES)
def test_more_sends_in_flight_than_the_provider_allows_fails_the_synth(name: str) -> None:
    # Given a stage whose in-flight sends exactly use the provider's rate limit
    settings = stage_settings(name)
    limit = settings.delivery.provider_rate_limit_per_second
    at_limit = _with_consumer(settings, max_concurrency=2, send_concurrency=limit // 2)
    assert at_limit.consumer.send_concurrency * at_limit.consumer.max_concurrency <= limit

    # When one more concurrent poller would push it over
    with pytest.raises(StageSettingsError) as refused:
        _with_consumer(at_limit, max_concurrency=3)

    # Then the error names the three numbers involved, so the fix is obvious
    message = str(refused.value)
    assert "send_concurrency" in message
    assert "max_concurrency" in message
    assert f"provider_rate_limit_per_second ({limit})" in message


def test_a_lease_no_longer_than_the_consumer_timeout_is_refused() -> None:
    # Given dev, whose consumer may run for its full timeout
    settings = stage_settings("dev")
    # When the lease would expire while the invocation is still sending
    with pytest.raises(StageSettingsError, match="lease_seconds"):
        _with_consumer(settings, lease_seconds=settings.consumer.timeout_seconds)


def test_every_stage_leases_longer_than_its_consumer_runs() -> None:
    for name in STAGE_NAMES:
        settings = stage_settings(name)
        assert settings.consumer.lease_seconds > settings.consumer.timeout_seconds


@pytest.mark.parametrize(
    ("change", "what"),
    [
        ({"backoff_base_seconds": 3}, "backoff_base_seconds"),
        ({"max_delay_hop_seconds": 6}, "max_delay_hop_seconds"),
        ({"throttle_backoff_seconds": 2}, "throttle_backoff_seconds"),
    ],
)
def test_the_local_stage_refuses_slow_retries(change: dict[str, int], what: str) -> None:
    # Given the local stage, where e2e tests wait for retries in real time
    # When a setting would make them wait longer than the contract allows
    with pytest.raises(StageSettingsError, match=what):
        _with_delivery(stage_settings("local"), **change)


def test_the_local_stage_refuses_a_visibility_timeout_over_a_minute() -> None:
    # A consumer timeout of 11 s would give the queue a visibility timeout of 66 s
    with pytest.raises(StageSettingsError, match="visibility timeout"):
        _with_consumer(stage_settings("local"), timeout_seconds=11)


def test_aws_stages_pace_retries_in_minutes_and_local_in_seconds() -> None:
    for name in ("dev", "prod"):
        delivery = stage_settings(name).delivery
        assert delivery.max_delay_hop_seconds == 900
        assert delivery.backoff_base_seconds >= 60
        assert delivery.provider == "resend"
    local = stage_settings("local")
    assert local.delivery.max_delay_hop_seconds <= 5
    assert local.delivery.backoff_base_seconds <= 2
    assert local.delivery.throttle_backoff_seconds == 1
    assert local.email_visibility_timeout_seconds <= 60
    assert (local.delivery.provider, local.delivery.smtp_host, local.delivery.smtp_port) == (
        "smtp",
        "127.0.0.1",
        1025,
    )


def test_a_dlq_that_forgets_before_the_queue_is_refused() -> None:
    settings = stage_settings("prod")
    with pytest.raises(StageSettingsError, match="DLQ"):
        dataclasses.replace(
            settings, email_queue=dataclasses.replace(settings.email_queue, dlq_retention_days=4)
        )


def test_resend_without_its_credentials_secret_is_refused() -> None:
    with pytest.raises(StageSettingsError, match="resend"):
        _with_delivery(stage_settings("dev"), uses_credentials_secret=False)


def test_settings_cannot_be_changed_after_the_checks_ran() -> None:
    settings = stage_settings("prod")
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.consumer.send_concurrency = 1000  # type: ignore[misc]


def test_the_deploying_team_sets_the_verified_sender_by_context() -> None:
    from stacks.settings import stage_settings

    settings = stage_settings("prod", email_sender="Bookings <bookings@mail.casa-lucio.es>")
    assert settings.delivery.sender == "Bookings <bookings@mail.casa-lucio.es>"
    assert stage_settings("prod").delivery.sender != settings.delivery.sender


def test_a_sender_without_an_address_is_refused() -> None:
    import pytest

    from stacks.settings import StageSettingsError, stage_settings

    with pytest.raises(StageSettingsError):
        stage_settings("prod", email_sender="Bookings")
