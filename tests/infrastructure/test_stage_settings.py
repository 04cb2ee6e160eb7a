"""Stage settings: the synth-time checks that keep a wrong number from being deployed."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from stacks.settings import (
    DEFAULT_STAGE,
    STAGE_NAMES,
    StageSettings,
    StageSettingsError,
    derive,
    stage_settings,
)


def _with_consumer(settings: StageSettings, **changes: int) -> StageSettings:
    return derive(settings, consumer=changes)


def _with_delivery(settings: StageSettings, **changes: Any) -> StageSettings:
    return derive(settings, delivery=changes)


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
    at_limit = _with_consumer(
        settings, max_concurrency=2, reserved_concurrency=3, send_concurrency=limit // 2
    )
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
    assert local.consumer.visibility_timeout_seconds <= 60
    assert (local.delivery.provider, local.delivery.smtp_host, local.delivery.smtp_port) == (
        "smtp",
        "127.0.0.1",
        1025,
    )


def test_a_dlq_that_forgets_before_the_queue_is_refused() -> None:
    settings = stage_settings("prod")
    with pytest.raises(StageSettingsError, match="DLQ"):
        derive(settings, email_queue={"dlq_retention_days": 4})


def test_resend_without_its_credentials_secret_is_refused() -> None:
    with pytest.raises(StageSettingsError, match="resend"):
        _with_delivery(stage_settings("dev"), uses_credentials_secret=False)


def test_settings_cannot_be_changed_after_the_checks_ran() -> None:
    settings = stage_settings("prod")
    with pytest.raises(ValidationError, match="frozen"):
        settings.consumer.send_concurrency = 1000


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


def test_every_stage_throttles_its_api_with_room_for_a_second_of_traffic() -> None:
    for name in STAGE_NAMES:
        api = stage_settings(name).api
        assert 1 <= api.throttling_rate_limit <= api.throttling_burst_limit
        assert 0 < api.server_error_alarm_percent < 100
        assert api.server_error_alarm_min_requests >= 1


def test_an_api_burst_below_its_steady_rate_is_refused() -> None:
    with pytest.raises(StageSettingsError, match="throttling_burst_limit"):
        derive(stage_settings("prod"), api={"throttling_rate_limit": 100, "throttling_burst_limit": 50})


@pytest.mark.parametrize("function", ["email_api", "reservations_api"])
def test_an_api_function_allowed_longer_than_api_gateway_waits_is_refused(function: str) -> None:
    # API Gateway answers 504 after 29 s whatever the function is still doing
    with pytest.raises(StageSettingsError, match=rf"{function}\.timeout_seconds"):
        derive(stage_settings("dev"), **{function: {"timeout_seconds": 30}})


def test_prod_is_dev_with_its_differences() -> None:
    # Given dev, and prod derived from it
    dev, prod = stage_settings("dev"), stage_settings("prod")
    # Then what prod does not override is dev's, so a new setting reaches both stages
    assert prod.email_queue == dev.email_queue
    assert prod.delivery.provider == dev.delivery.provider
    assert prod.email_api.timeout_seconds == dev.email_api.timeout_seconds
    assert (prod.retain_data, dev.retain_data) == (True, False)


def test_a_broken_rule_names_the_stage_and_the_field_without_echoing_input() -> None:
    with pytest.raises(StageSettingsError) as refused:
        derive(
            stage_settings("dev"), consumer={"max_concurrency": 1}, observability={"log_retention_days": 2}
        )
    message = str(refused.value)
    assert message.startswith("stage 'dev': ")
    assert "consumer.max_concurrency" in message
    assert "observability.log_retention_days" in message


# --- drift notifications ----------------------------------------------------------------------


def test_the_local_stage_sends_drift_to_the_webhook_sink_and_aws_stages_wait_for_one() -> None:
    from stacks.settings import LOCAL_WEBHOOK_SECRET

    local = stage_settings("local").notifications
    assert local.webhook
    assert local.local_webhook_url == "http://127.0.0.1:8025/webhooks/policy-drift"
    assert local.local_webhook_secret == LOCAL_WEBHOOK_SECRET
    assert not local.webhook_secret_in_aws
    for name in ("dev", "prod"):
        notifications = stage_settings(name).notifications
        # No webhook and nothing in the environment until the deploying team turns it on
        assert not notifications.webhook
        assert (notifications.local_webhook_url, notifications.local_webhook_secret) == (None, None)
        assert notifications.admin_email.endswith(".example")


def test_the_deploying_team_turns_the_webhook_on_and_sets_the_admin_address_by_context() -> None:
    settings = stage_settings("prod", webhook="on", admin_email="ops@casa-lucio.es")
    assert settings.notifications.webhook
    # Its URL and secret are the stack's secret's, filled in by operators: none in the settings
    assert settings.notifications.webhook_secret_in_aws
    assert settings.notifications.local_webhook_url is None
    assert settings.notifications.admin_email == "ops@casa-lucio.es"
    # The rest of the section is the stage's own
    assert settings.notifications.notifier == stage_settings("prod").notifications.notifier


@pytest.mark.parametrize(
    ("word", "on"), [("on", True), ("true", True), ("Yes", True), ("off", False), ("0", False)]
)
def test_the_webhook_flag_takes_on_or_off_as_cdk_passes_it(word: str, on: bool) -> None:
    assert stage_settings("dev", webhook=word).notifications.webhook is on
    assert stage_settings("dev", webhook=on).notifications.webhook is on


def test_a_webhook_flag_that_is_neither_on_nor_off_is_refused() -> None:
    with pytest.raises(StageSettingsError, match="on or off"):
        stage_settings("dev", webhook="https://hooks.example.com/tok_in_path")


@pytest.mark.parametrize("url", ["https://hooks.example.com/policy-drift/tok_in_path", "hooks"])
def test_a_webhook_url_given_as_context_is_refused_with_what_to_do_instead(url: str) -> None:
    # A URL at synth time would be in the template and the environment, and may carry a token
    with pytest.raises(StageSettingsError) as refused:
        stage_settings("prod", webhook_url=url)
    message = str(refused.value)
    assert "-c webhook=on" in message
    assert "WebhookSecretArn" in message
    # The message never echoes it
    assert "tok_in_path" not in message


@pytest.mark.parametrize(
    "url", ["https://hooks.example.com/policy-drift", "http://10.0.0.8:8025/", "http://127.0.0.1.nip.io/"]
)
def test_only_a_loopback_url_is_ever_a_webhook_in_the_environment(url: str) -> None:
    from stacks.settings import LOCAL_WEBHOOK_SECRET

    with pytest.raises(StageSettingsError, match="local_webhook_url") as refused:
        derive(
            stage_settings("local"),
            notifications={"local_webhook_url": url, "local_webhook_secret": LOCAL_WEBHOOK_SECRET},
        )
    assert url not in str(refused.value)


def test_the_local_secret_goes_only_with_the_local_sink() -> None:
    from stacks.settings import LOCAL_WEBHOOK_SECRET

    # A deployed stage with a webhook keeps no secret in the environment
    with pytest.raises(StageSettingsError, match="local_webhook_secret") as refused:
        derive(
            stage_settings("prod", webhook="on"), notifications={"local_webhook_secret": LOCAL_WEBHOOK_SECRET}
        )
    assert LOCAL_WEBHOOK_SECRET not in str(refused.value)
    # And the local sink always signs with it
    with pytest.raises(StageSettingsError, match="local_webhook_secret"):
        derive(stage_settings("local"), notifications={"local_webhook_secret": None})
    # The local sink is a webhook: turning the webhook off there is refused
    with pytest.raises(StageSettingsError, match="set webhook"):
        stage_settings("local", webhook="off")


def test_a_batch_of_slow_webhooks_must_fit_in_one_notifier_invocation() -> None:
    # Given dev's notifier: 60 s for a batch of 10
    settings = stage_settings("dev")
    # When each webhook call may take 6 s, ten of them one after another would outlast it
    with pytest.raises(StageSettingsError, match="webhook_timeout_seconds"):
        derive(settings, notifications={"webhook_timeout_seconds": 6})
    # Then a smaller batch makes it fit again, without restating the rest of the notifier
    smaller = derive(settings, notifications={"webhook_timeout_seconds": 6, "notifier": {"batch_size": 5}})
    assert smaller.notifications.notifier.timeout_seconds == settings.notifications.notifier.timeout_seconds


def test_the_local_stage_refuses_a_notifications_visibility_timeout_over_a_minute() -> None:
    with pytest.raises(StageSettingsError, match="notifications visibility timeout"):
        derive(stage_settings("local"), notifications={"notifier": {"timeout_seconds": 11}})


def test_every_stage_dead_letters_notifications_after_five_receives() -> None:
    for name in STAGE_NAMES:
        assert stage_settings(name).notifications_queue.max_receive_count == 5


def test_an_admin_address_that_is_not_an_address_is_refused() -> None:
    with pytest.raises(StageSettingsError, match="admin_email"):
        stage_settings("prod", admin_email="Booking admins")


# --- alarms ------------------------------------------------------------------------------------


def test_no_stage_emails_its_alarms_until_the_deploying_team_names_an_address() -> None:
    for name in STAGE_NAMES:
        assert stage_settings(name).observability.alarm_email is None
    settings = stage_settings("prod", alarm_email="oncall@casa-lucio.es")
    assert settings.observability.alarm_email == "oncall@casa-lucio.es"
    # The rest of the section is the stage's own
    assert (
        settings.observability.log_retention_days == stage_settings("prod").observability.log_retention_days
    )


def test_an_alarm_address_that_is_not_an_address_is_refused() -> None:
    with pytest.raises(StageSettingsError, match=r"observability\.alarm_email"):
        stage_settings("prod", alarm_email="the on-call team")


def test_a_delivery_lag_alarm_that_healthy_first_attempts_would_trip_is_refused() -> None:
    # Given dev, whose first attempt can take the 5 s batching window and a 60 s invocation
    settings = stage_settings("dev")
    first_attempt = settings.consumer.max_batching_window_seconds + settings.consumer.timeout_seconds
    # When the lag alarm would page at that lag
    with pytest.raises(StageSettingsError, match="delivery_lag_p99_alarm_seconds"):
        derive(settings, observability={"delivery_lag_p99_alarm_seconds": first_attempt})
    # Then one second more is accepted
    derive(settings, observability={"delivery_lag_p99_alarm_seconds": first_attempt + 1})


def test_the_email_age_alarm_follows_the_retry_pacing() -> None:
    # Given dev, and dev with a longer backoff base and one more receive
    dev = stage_settings("dev")
    slower = derive(dev, delivery={"backoff_base_seconds": 120}, email_queue={"max_receive_count": 6})
    # Then the backoffs double up to the 900 s cap, and the threshold grows with them
    assert dev.email_retry_backoffs_seconds == (60, 120, 240, 480)
    assert slower.email_retry_backoffs_seconds == (120, 240, 480, 900, 900)
    assert slower.email_age_alarm_seconds > dev.email_age_alarm_seconds


@pytest.mark.parametrize("name", STAGE_NAMES)
def test_every_function_of_every_stage_reserves_concurrency(name: str) -> None:
    settings = stage_settings(name)
    assert set(settings.functions) == {
        "consumer",
        "email_api",
        "reservations_api",
        "notifications.notifier",
        "drift_sweep",
    }
    assert all(function.reserved_concurrency >= 1 for function in settings.functions.values())
    assert settings.reserved_concurrency == sum(f.reserved_concurrency for f in settings.functions.values())


def test_a_queue_consumer_reserving_fewer_executions_than_its_mapping_polls_with_is_refused() -> None:
    settings = stage_settings("prod")
    with pytest.raises(StageSettingsError) as refused:
        _with_consumer(settings, reserved_concurrency=settings.consumer.max_concurrency - 1)
    assert "consumer: reserved_concurrency (4) is below max_concurrency (5)" in str(refused.value)
    with pytest.raises(StageSettingsError, match=r"notifications\.notifier: reserved_concurrency"):
        derive(settings, notifications={"notifier": {"reserved_concurrency": 1}})


def test_reservations_that_leave_the_account_fewer_than_100_unreserved_executions_are_refused() -> None:
    # Given prod's reservations, and an account whose quota leaves exactly 100 of them unreserved
    settings = stage_settings("prod")
    at_limit = derive(settings, account_concurrency=settings.reserved_concurrency + 100)
    assert at_limit.account_concurrency - at_limit.reserved_concurrency == 100
    # When one function reserves one more execution, the synth stops and says what to change
    more = at_limit.reservations_api.reserved_concurrency + 1
    with pytest.raises(StageSettingsError) as refused:
        derive(at_limit, reservations_api={"reserved_concurrency": more})
    message = str(refused.value)
    assert f"reserve {at_limit.reserved_concurrency + 1} executions" in message
    assert "leaving 99" in message
    assert f"reservations_api {more}" in message
    assert "raise the account's quota" in message


def test_a_new_account_at_lambdas_starting_quota_is_refused_until_it_is_raised() -> None:
    # New accounts may start with a Lambda quota of 10: nothing can be reserved then.
    with pytest.raises(StageSettingsError, match="account_concurrency"):
        derive(stage_settings("dev"), account_concurrency=10)


# --- what prod refuses to deploy -----------------------------------------------------------------

REAL_SENDER = "Bookings <bookings@mail.casa-lucio.es>"


def test_prod_as_shipped_has_a_placeholder_sender_and_no_drift_channel_and_says_both() -> None:
    with pytest.raises(StageSettingsError) as refused:
        stage_settings("prod").require_real_addresses()
    message = str(refused.value)
    assert message.startswith("stage 'prod': ")
    assert "-c email_sender=" in message
    assert "-c webhook=on" in message
    assert "-c admin_email=" in message
    # The addresses it refused are not repeated
    assert "booking-durability.example" not in message


@pytest.mark.parametrize(
    "context",
    [
        {"email_sender": REAL_SENDER, "webhook": "on"},
        {"email_sender": REAL_SENDER, "admin_email": "drift-admins@casa-lucio.es"},
        # A webhook is the channel: the admin address is then never used
        {"email_sender": REAL_SENDER, "webhook": "on", "admin_email": "admins@example.com"},
    ],
)
def test_prod_with_a_real_sender_and_a_real_channel_is_accepted(context: dict[str, str]) -> None:
    stage_settings("prod", **context).require_real_addresses()


@pytest.mark.parametrize(
    "admin_email",
    [
        "admins@booking-durability.example",
        "admin@example.com",
        "admin@mail.example.org",
        "ops@bookings.test",
        "ops@casa.invalid",
        "ops@EXAMPLE.NET",
        "ops@bookings.localhost",
    ],
)
def test_prod_refuses_a_placeholder_admin_address_without_echoing_it(admin_email: str) -> None:
    settings = stage_settings("prod", email_sender=REAL_SENDER, admin_email=admin_email)
    with pytest.raises(StageSettingsError, match="drift notifications have no channel") as refused:
        settings.require_real_addresses()
    assert admin_email not in str(refused.value)
    assert admin_email.partition("@")[2] not in str(refused.value)


@pytest.mark.parametrize("sender", ["Bookings <bookings@mail.example.com>", "bookings@casa.test"])
def test_prod_refuses_a_placeholder_sender(sender: str) -> None:
    settings = stage_settings("prod", email_sender=sender, webhook="on")
    with pytest.raises(StageSettingsError, match="placeholder address") as refused:
        settings.require_real_addresses()
    assert sender not in str(refused.value)


@pytest.mark.parametrize("name", ["dev", "local"])
def test_dev_and_local_may_keep_their_placeholders(name: str) -> None:
    settings = stage_settings(name)
    assert not settings.refuses_placeholder_addresses
    settings.require_real_addresses()
