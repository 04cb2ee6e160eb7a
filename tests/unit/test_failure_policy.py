"""What the consumer does after each kind of provider failure
(docs/reference/queue-message.md#failure-handling), without any I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from booking_durability.emails.failure_policy import (
    Attempt,
    CountAsSent,
    DeadLetter,
    Defer,
    Expire,
    FailurePolicy,
    Retry,
    WaitHere,
)
from booking_durability.emails.models import FailureReason
from booking_durability.emails.providers.base import (
    AlreadyDelivered,
    PermanentProviderError,
    ProviderNotConfigured,
    ProviderThrottled,
    TransientProviderError,
)
from tests.builders import T0

POLICY = FailurePolicy(
    backoff_base_seconds=60,
    max_receives=5,
    throttle_backoff_seconds=30,
    max_throttle_deferrals=3,
    provider_timeout_seconds=10,
)


def attempt(
    *,
    receive_count: int = 1,
    throttle_deferrals: int = 0,
    waited_here: int = 0,
    remaining_ms: int = 900_000,
    not_after: datetime | None = None,
) -> Attempt:
    return Attempt(T0, receive_count, throttle_deferrals, waited_here, remaining_ms, not_after)


def test_backoff_doubles_with_each_receive_and_is_capped_at_fifteen_minutes() -> None:
    assert [POLICY.backoff_seconds(n) for n in (1, 2, 3, 4)] == [60, 120, 240, 480]
    assert POLICY.backoff_seconds(10) == 900


def test_a_transient_failure_is_retried_until_the_last_receive_then_dead_lettered() -> None:
    failure = TransientProviderError("resend", 503)
    assert POLICY.decide(failure, attempt(receive_count=2)) == Retry(120)
    assert POLICY.decide(failure, attempt(receive_count=5)) == DeadLetter(FailureReason.TRANSIENT_EXHAUSTED)


def test_a_permanent_refusal_is_dead_lettered_at_once() -> None:
    decision = POLICY.decide(PermanentProviderError("resend", 422), attempt())
    assert decision == DeadLetter(FailureReason.PROVIDER_REJECTED)


def test_an_email_the_provider_already_delivered_counts_as_sent() -> None:
    assert POLICY.decide(AlreadyDelivered("resend", 409), attempt()) == CountAsSent()


def test_a_throttle_that_fits_the_invocation_is_waited_out_here() -> None:
    assert POLICY.decide(ProviderThrottled("resend", 429, retry_after=2), attempt()) == WaitHere(2)


def test_a_throttle_without_retry_after_waits_the_stage_backoff() -> None:
    assert POLICY.decide(ProviderThrottled("smtp", 421), attempt()) == WaitHere(30)


@pytest.mark.parametrize(
    "where",
    [
        {"remaining_ms": 5_000},  # the wait does not fit what is left of the invocation
        {"waited_here": 3},  # already waited as often as the budget allows here
    ],
)
def test_a_throttle_that_does_not_fit_is_deferred_as_a_fresh_copy(where: dict[str, int]) -> None:
    throttle = ProviderThrottled("resend", 429, retry_after=20)
    assert POLICY.decide(throttle, attempt(**where)) == Defer(20)


def test_a_throttle_past_the_deferral_budget_is_dead_lettered() -> None:
    decision = POLICY.decide(
        ProviderThrottled("resend", 429, retry_after=20), attempt(remaining_ms=5_000, throttle_deferrals=3)
    )
    assert decision == DeadLetter(FailureReason.THROTTLE_EXHAUSTED)


def test_a_throttle_that_would_deliver_after_not_after_expires_the_email() -> None:
    decision = POLICY.decide(
        ProviderThrottled("resend", 429, retry_after=60), attempt(not_after=T0 + timedelta(seconds=30))
    )
    assert decision == Expire()


def test_a_provider_without_credentials_is_retried_then_dead_lettered_with_its_own_reason() -> None:
    failure = ProviderNotConfigured("resend", "placeholder")
    assert POLICY.decide(failure, attempt(receive_count=1)) == Retry(60)
    assert POLICY.decide(failure, attempt(receive_count=4)) == Retry(480)
    assert POLICY.decide(failure, attempt(receive_count=5)) == DeadLetter(
        FailureReason.PROVIDER_NOT_CONFIGURED
    )


def test_the_last_receive_is_the_one_sqs_would_dead_letter_after() -> None:
    assert [POLICY.last_receive(n) for n in (1, 4, 5, 6)] == [False, False, True, True]


@settings(deadline=None)  # a shared machine is slow at times: no timing here
@given(receive_count=st.integers(min_value=1, max_value=10**9))
def test_backoff_stays_within_fifteen_minutes_for_any_receive_count(receive_count: int) -> None:
    assert 60 <= POLICY.backoff_seconds(receive_count) <= 900


INSTANTS = st.datetimes(
    datetime(1, 1, 2),
    datetime(9999, 12, 30),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=-14))]),
)


@settings(deadline=None)  # a shared machine is slow at times: no timing here
@given(
    retry_after=st.one_of(st.none(), st.floats(), st.integers(min_value=-(10**30), max_value=10**30)),
    now=INSTANTS,
    not_after=st.none() | INSTANTS,
    waited_here=st.integers(0, 5),
    remaining_ms=st.integers(0, 900_000),
)
def test_no_retry_after_and_no_instant_makes_the_throttle_decision_overflow(
    retry_after: float | None, now: datetime, not_after: datetime | None, waited_here: int, remaining_ms: int
) -> None:
    # Given whatever a provider said to wait (as it stands, even past the error's own bound),
    # at any instant a message can carry
    throttle = ProviderThrottled("resend", 429)
    throttle.retry_after = retry_after
    decision = POLICY.decide(throttle, Attempt(now, 1, 0, waited_here, remaining_ms, not_after))
    # Then the decision is made, and any wait in it is at most an hour
    if isinstance(decision, WaitHere | Defer):
        assert 0 <= decision.seconds <= 3600
