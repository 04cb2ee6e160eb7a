"""The consumer's delivery logic against moto: every path of
docs/reference/queue-message.md#delivery-semantics, one test each.

The provider is scripted in memory; the ledger, the queue and the DLQ are real (moto).
"""

from __future__ import annotations

import io
import itertools
import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from booking_durability.emails.consumer import consume_batch
from booking_durability.emails.delivery import EmailOutcome, IncomingMessage, RetryLater
from booking_durability.emails.ledger import Change
from booking_durability.emails.models import EmailRef, EmailStatus
from booking_durability.emails.ports import OutgoingMessage
from booking_durability.emails.providers.base import (
    AlreadyDelivered,
    OutgoingEmail,
    PermanentProviderError,
    ProviderThrottled,
    TransientProviderError,
)
from booking_durability.emails.providers.resend import parse_retry_after
from booking_durability.errors import QueueSendFailed
from booking_durability.observability import metrics
from tests.builders import T0, job, sqs_event, sqs_record
from tests.integration.conftest import (
    Clock,
    Resources,
    ScriptedProvider,
    consumer_of,
    ledger,
    make_delivery,
)


def message(body: dict[str, Any] | str, *, receive_count: int = 1, attempts: int = 0) -> IncomingMessage:
    return IncomingMessage(
        message_id="m-1",
        receipt_handle="rh-1",
        body=body if isinstance(body, str) else json.dumps(body),
        receive_count=receive_count,
        attempts=attempts,
    )


def attributes(sqs_message: dict[str, Any]) -> dict[str, str]:
    return {k: v["StringValue"] for k, v in sqs_message.get("MessageAttributes", {}).items()}


class HopQueue:
    """Captures re-queued messages so a test can replay a two-hour wait hop by hop."""

    def __init__(self) -> None:
        self.sent: list[OutgoingMessage] = []

    def send(self, message: OutgoingMessage) -> str:
        self.sent.append(message)
        return "m"

    def change_visibility(self, receipt_handle: str, seconds: int) -> None:
        return None


class RefusingQueue:
    """SQS refusing every send."""

    def send(self, message: OutgoingMessage) -> str:
        raise QueueSendFailed("send_message failed: ServiceUnavailable")

    def change_visibility(self, receipt_handle: str, seconds: int) -> None:
        raise QueueSendFailed("change_message_visibility failed: ServiceUnavailable")


@pytest.fixture(autouse=True)
def invocation_metrics() -> Iterator[None]:
    """The metrics these tests count, with none carried in or out: no handler flushes them here."""
    metrics.clear_metrics()
    yield
    metrics.clear_metrics()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def provider() -> ScriptedProvider:
    return ScriptedProvider()


# -- happy path and dedupe ---------------------------------------------------------------------


def test_a_due_job_is_sent_once_and_recorded(
    resources: Resources, provider: ScriptedProvider, clock: Clock
) -> None:
    delivery = make_delivery(resources, provider, clock)
    body = job()
    assert delivery.deliver(message(body)) is EmailOutcome.SENT
    [email] = provider.sent
    assert email.dedupe_key == "bk_123#booking_confirmed#0"
    assert email.message_id.endswith("@booking.local>")
    assert resources.status("bk_123", "booking_confirmed#0") == "sent"


def test_a_second_copy_of_a_sent_job_is_acknowledged_without_sending(
    resources: Resources, provider: ScriptedProvider, clock: Clock
) -> None:
    delivery = make_delivery(resources, provider, clock)
    body = job()
    delivery.deliver(message(body))
    # When SQS delivers the same job again (at-least-once)
    assert delivery.deliver(message(body)) is EmailOutcome.DUPLICATE
    assert len(provider.sent) == 1


def test_a_cancelled_email_is_skipped(resources: Resources, provider: ScriptedProvider, clock: Clock) -> None:
    resources.dynamodb.put_item(
        TableName=resources.table,
        Item={
            "booking_id": {"S": "bk_123"},
            "email_key": {"S": "booking_confirmed#0"},
            "status": {"S": "cancelled"},
        },
    )
    delivery = make_delivery(resources, provider, clock)
    assert delivery.deliver(message(job())) is EmailOutcome.CANCELLED
    assert provider.calls == 0


def test_a_live_lease_elsewhere_requeues_and_never_sends_twice(
    resources: Resources, provider: ScriptedProvider, clock: Clock
) -> None:
    # Given another worker claimed the key a moment ago, with a 120 s lease
    ref = EmailRef("bk_123", "booking_confirmed", 0)
    ledger(resources).claim(ref, "other-job", clock.now, T0, lease_seconds=120)
    delivery = make_delivery(resources, provider, clock, MAX_DELAY_HOP_SECONDS=900)
    hops = HopQueue()
    delivery.dispatch.queue = hops
    body = json.dumps(job())
    # When our copy arrives
    assert delivery.deliver(message(body)) is EmailOutcome.DEFERRED
    # Then nothing is sent, the key stays theirs, and our copy comes back after their lease
    assert provider.calls == 0
    assert resources.status("bk_123", "booking_confirmed#0") == "sending"
    [hop] = hops.sent
    assert (hop.body, hop.delay_seconds) == (body, 121)


def test_an_expired_lease_is_taken_over_and_sent_with_the_same_key(
    resources: Resources, provider: ScriptedProvider, clock: Clock
) -> None:
    # Given a worker died between claim and send
    ref = EmailRef("bk_123", "booking_confirmed", 0)
    ledger(resources).claim(ref, "dead-worker", clock.now, T0, lease_seconds=120)
    clock.advance(seconds=121)
    delivery = make_delivery(resources, provider, clock)
    # When the message comes back
    assert delivery.deliver(message(job())) is EmailOutcome.SENT
    # Then it goes out with the same idempotency key, and the record counts both attempts
    assert provider.sent[0].dedupe_key == ref.dedupe_key
    item = resources.items()[0]
    assert item["attempts"]["N"] == "2"
    assert item["status"]["S"] == "sent"


def test_a_holder_whose_lease_ran_out_is_refused_logged_and_counted(
    resources: Resources, clock: Clock, log_lines: io.StringIO
) -> None:
    ref = EmailRef("bk_123", "booking_confirmed", 0)
    deliveries = ledger(resources)
    takeover: list[Any] = []

    class RefusingAfterTheLease:
        """A provider whose answer comes after our 120 s lease, once another worker took over."""

        name = "slow"

        def send(self, email: OutgoingEmail) -> str:
            clock.advance(seconds=121)
            takeover.append(deliveries.claim(ref, "worker-b", clock.now, T0, lease_seconds=120))
            raise PermanentProviderError("resend", 422)

    # Given our worker claimed the key, and another took it over while the provider answered
    outcome = make_delivery(resources, RefusingAfterTheLease(), clock).deliver(message(job()))
    # Then our "failed" is refused: the other worker's record stands
    [theirs] = takeover
    assert theirs.done
    [item] = resources.items()
    assert (item["status"]["S"], item["lease_token"]["S"]) == ("sending", theirs.record.lease_token)
    assert "failure_reason" not in item
    assert outcome is EmailOutcome.DEAD_LETTERED
    # And the refusal is logged and counted as EmailLeaseLost (the dashboard's skipped graph)
    lost = [json.loads(line) for line in log_lines.getvalue().splitlines() if "lease lost" in line]
    assert [(line["level"], line["current_status"]) for line in lost] == [("WARNING", "sending")]
    assert metrics.metric_set["EmailLeaseLost"]["Value"] == [1.0]


def test_a_provider_that_already_delivered_the_key_counts_as_sent(
    resources: Resources, provider: ScriptedProvider, clock: Clock
) -> None:
    provider.script = [AlreadyDelivered("resend", 409)]
    assert make_delivery(resources, provider, clock).deliver(message(job())) is EmailOutcome.SENT
    assert resources.status("bk_123", "booking_confirmed#0") == "sent"


def test_a_failed_email_is_attempted_again_when_redriven(
    resources: Resources, provider: ScriptedProvider, clock: Clock
) -> None:
    provider.script = [PermanentProviderError("smtp", 550)]
    delivery = make_delivery(resources, provider, clock)
    body = job()
    assert delivery.deliver(message(body)) is EmailOutcome.DEAD_LETTERED
    assert resources.status("bk_123", "booking_confirmed#0") == "failed"
    # When the operator fixed the fault and redrove the message
    assert delivery.deliver(message(body)) is EmailOutcome.SENT
    assert resources.status("bk_123", "booking_confirmed#0") == "sent"


def test_suppress_if_sent_skips_when_one_of_those_went_out(
    resources: Resources, provider: ScriptedProvider, clock: Clock
) -> None:
    delivery = make_delivery(resources, provider, clock)
    delivery.deliver(message(job(email_type="booking_confirmed")))
    # Given the request-received email is told to stand down once a confirmation went out
    late = job(email_type="booking_request_received", suppress_if_sent=["booking_confirmed"])
    assert delivery.deliver(message(late)) is EmailOutcome.SUPPRESSED
    assert len(provider.sent) == 1
    assert resources.status("bk_123", "booking_request_received#0") == "suppressed"


def test_suppress_if_sent_lets_the_email_go_when_none_was_sent(
    resources: Resources, provider: ScriptedProvider, clock: Clock
) -> None:
    body = job(email_type="booking_request_received", suppress_if_sent=["booking_confirmed"])
    assert make_delivery(resources, provider, clock).deliver(message(body)) is EmailOutcome.SENT


def test_happy_path_writes_twice_and_reads_nothing(
    resources: Resources, provider: ScriptedProvider, clock: Clock
) -> None:
    calls: list[str] = []
    delivery = make_delivery(resources, provider, clock)
    resources.dynamodb.meta.events.register(
        "before-call.dynamodb", lambda model, **_: calls.append(model.name)
    )
    delivery.deliver(message(job()))
    assert calls == ["UpdateItem", "UpdateItem"]


# -- time: long delays and expiry --------------------------------------------------------------


def test_an_early_message_is_requeued_with_the_remaining_delay(
    resources: Resources, provider: ScriptedProvider, clock: Clock
) -> None:
    delivery = make_delivery(resources, provider, clock, MAX_DELAY_HOP_SECONDS=900)
    assert delivery.deliver(message(job(deliver_at=T0 + timedelta(seconds=40)))) is EmailOutcome.DEFERRED
    assert provider.calls == 0


def test_a_two_hour_delay_is_delivered_after_its_time_and_not_before(
    resources: Resources, provider: ScriptedProvider, clock: Clock
) -> None:
    delivery = make_delivery(resources, provider, clock, MAX_DELAY_HOP_SECONDS=900)
    hops = HopQueue()
    delivery.dispatch.queue = hops
    deliver_at = T0 + timedelta(hours=2)
    body = json.dumps(job(deliver_at=deliver_at))
    outcome = delivery.deliver(message(body))
    # When each re-queued copy comes back after its SQS delay
    while outcome is EmailOutcome.DEFERRED:
        hop = hops.sent[-1]
        assert 1 <= hop.delay_seconds <= 900
        assert hop.body == body
        assert provider.calls == 0
        assert clock.now < deliver_at
        clock.advance(seconds=hop.delay_seconds)
        outcome = delivery.deliver(message(hop.body))
    # Then it is sent once, at its time, after eight hops of fifteen minutes
    assert outcome is EmailOutcome.SENT
    assert clock.now == deliver_at
    assert len(hops.sent) == 8


def test_not_after_in_the_past_expires_the_email(
    resources: Resources, provider: ScriptedProvider, clock: Clock
) -> None:
    body = job(not_after="2026-12-01T11:00:00Z")
    assert make_delivery(resources, provider, clock).deliver(message(body)) is EmailOutcome.EXPIRED
    assert provider.calls == 0
    assert resources.status("bk_123", "booking_confirmed#0") == "expired"


def test_retention_is_thirty_days_after_the_later_of_the_claims_lease_and_delivery(
    resources: Resources, provider: ScriptedProvider, clock: Clock
) -> None:
    # Given a 120 s lease: the claim's retention covers every write its holder makes
    make_delivery(resources, provider, clock, LEASE_SECONDS=120).deliver(message(job()))
    expires_at = int(resources.items()[0]["expires_at"]["N"])
    assert expires_at == int((T0 + timedelta(days=30, seconds=120)).timestamp())
    # And a job due in 45 days is kept 30 days past then
    later = T0 + timedelta(days=45)
    clock.now = later
    make_delivery(resources, provider, clock).deliver(message(job(booking_id="bk_later", deliver_at=later)))
    [item] = [i for i in resources.items() if i["booking_id"]["S"] == "bk_later"]
    assert int(item["expires_at"]["N"]) == int((later + timedelta(days=30, seconds=120)).timestamp())


# -- bad messages ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected_attributes"),
    [
        ("{not json", {"failure_reason": "invalid_json", "attempts": "0"}),
        (
            json.dumps({**job(), "revision": "x"}),
            {"failure_reason": "schema_invalid", "attempts": "0", "schema": "booking-email/v1"},
        ),
        (
            json.dumps({**job(), "schema": "booking-email/v9"}),
            {"failure_reason": "schema_invalid", "attempts": "0"},
        ),
        # JSON nested too deep to read, and a time zone naming a folder of zones (an OS error)
        ("[" * 100_000 + "]" * 100_000, {"failure_reason": "invalid_json", "attempts": "0"}),
        (
            json.dumps({**job(), "time_zone": "America"}),
            {"failure_reason": "schema_invalid", "attempts": "0", "schema": "booking-email/v1"},
        ),
    ],
)
def test_bad_messages_go_to_the_dlq_at_once_with_a_reason(
    resources: Resources,
    provider: ScriptedProvider,
    clock: Clock,
    body: str,
    expected_attributes: dict[str, str],
) -> None:
    outcome = make_delivery(resources, provider, clock).deliver(message(body))
    assert outcome is EmailOutcome.DEAD_LETTERED
    [dead] = resources.drain(resources.dlq_url)
    assert dead["Body"] == body
    # Only values the consumer knows: never one taken from a body that failed validation (no
    # dedupe_key), and when it was first dead-lettered
    assert attributes(dead) == {**expected_attributes, "first_dead_lettered_at": "2026-12-01T12:00:00Z"}
    assert provider.calls == 0


def test_a_dead_lettered_message_logs_only_the_names_its_schema_declares(
    resources: Resources, provider: ScriptedProvider, clock: Clock, log_lines: io.StringIO
) -> None:
    # Given messages whose unexpected keys are a one-word surname, in several places: top level,
    # the recipient, the data of a known type
    planted = job()
    bodies = [
        {**planted, "Garcia": 1},
        {**planted, "recipient": {**planted["recipient"], "Garcia": "x"}},
        {**planted, "data": {**planted["data"], "garcia": "x"}, "party_size": "x"},
    ]
    delivery = make_delivery(resources, provider, clock)
    for body in bodies:
        assert delivery.deliver(message(json.dumps(body))) is EmailOutcome.DEAD_LETTERED
    # Then the log says where validation failed in the schema's names, never the surname
    logged = [json.loads(line) for line in log_lines.getvalue().splitlines() if "failed validation" in line]
    assert len(logged) == 3
    assert "garcia" not in log_lines.getvalue().lower()
    assert {location for line in logged for location in line["error_locations"]} >= {
        "booking_confirmed.(unknown)",
        "booking_confirmed.recipient.(unknown)",
    }


def test_a_record_whose_dead_letter_send_fails_is_not_acknowledged(
    resources: Resources, provider: ScriptedProvider, clock: Clock
) -> None:
    delivery = make_delivery(resources, provider, clock)
    delivery.dispatch.dlq = RefusingQueue()
    with pytest.raises(RetryLater):
        delivery.deliver(message("{not json"))


def test_one_bad_record_never_makes_the_others_redeliver(
    resources: Resources, provider: ScriptedProvider, clock: Clock
) -> None:
    delivery = make_delivery(resources, provider, clock)
    good = [sqs_record(job(booking_id=f"bk_{i}")) for i in range(3)]
    response = consume_batch(sqs_event(good[0], sqs_record("{oops"), *good[1:]), None, consumer_of(delivery))
    assert response == {"batchItemFailures": []}
    assert len(provider.sent) == 3
    assert len(resources.drain(resources.dlq_url)) == 1


# -- provider failures -------------------------------------------------------------------------


def test_a_transient_failure_is_retried_later_and_releases_the_key(
    resources: Resources, provider: ScriptedProvider, clock: Clock
) -> None:
    resources.sqs.send_message(QueueUrl=resources.queue_url, MessageBody=json.dumps(job()))
    [received] = resources.sqs.receive_message(QueueUrl=resources.queue_url)["Messages"]
    provider.script = [TransientProviderError("resend", 503)]
    delivery = make_delivery(resources, provider, clock)
    incoming = IncomingMessage("m-1", received["ReceiptHandle"], received["Body"], receive_count=2)
    with pytest.raises(RetryLater) as caught:
        delivery.deliver(incoming)
    assert "120s" in str(caught.value)
    assert resources.status("bk_123", "booking_confirmed#0") == "queued"
    # And the next receive may claim it again
    assert delivery.deliver(message(job())) is EmailOutcome.SENT


def test_the_fifth_failed_receive_dead_letters_transient_exhausted(
    resources: Resources, provider: ScriptedProvider, clock: Clock
) -> None:
    provider.script = [TransientProviderError("resend", 503)]
    delivery = make_delivery(resources, provider, clock)
    assert delivery.deliver(message(job(), receive_count=5)) is EmailOutcome.DEAD_LETTERED
    [dead] = resources.drain(resources.dlq_url)
    assert attributes(dead)["failure_reason"] == "transient_exhausted"
    assert resources.status("bk_123", "booking_confirmed#0") == "failed"


def test_a_permanent_refusal_dead_letters_at_once(
    resources: Resources, provider: ScriptedProvider, clock: Clock
) -> None:
    provider.script = [PermanentProviderError("resend", 422)]
    assert make_delivery(resources, provider, clock).deliver(message(job())) is EmailOutcome.DEAD_LETTERED
    [dead] = resources.drain(resources.dlq_url)
    assert attributes(dead) == {
        "email_type": "booking_confirmed",
        "schema": "booking-email/v1",
        "failure_reason": "provider_rejected",
        "attempts": "1",
        "dedupe_key": "bk_123#booking_confirmed#0",
        "first_dead_lettered_at": "2026-12-01T12:00:00Z",
    }


def test_throttling_waits_inside_the_invocation_when_it_fits(
    resources: Resources, provider: ScriptedProvider, clock: Clock
) -> None:
    provider.script = [ProviderThrottled("resend", 429, retry_after=2)]
    sleeps: list[float] = []
    delivery = make_delivery(resources, provider, clock, sleeps=sleeps)
    assert delivery.deliver(message(job()), remaining_ms=lambda: 60_000) is EmailOutcome.SENT
    assert sleeps == [2]


def test_smtp_throttling_without_retry_after_uses_the_stage_backoff(
    resources: Resources, provider: ScriptedProvider, clock: Clock
) -> None:
    provider.script = [ProviderThrottled("smtp", 421, retry_after=None)]
    sleeps: list[float] = []
    delivery = make_delivery(resources, provider, clock, sleeps=sleeps, THROTTLE_BACKOFF_SECONDS=1)
    assert delivery.deliver(message(job()), remaining_ms=lambda: 60_000) is EmailOutcome.SENT
    assert sleeps == [1]


def test_throttling_that_does_not_fit_sends_a_fresh_delayed_copy(
    resources: Resources, provider: ScriptedProvider, clock: Clock
) -> None:
    provider.script = [ProviderThrottled("resend", 429, retry_after=30)]
    delivery = make_delivery(resources, provider, clock)
    hops = HopQueue()
    delivery.dispatch.queue = hops
    body = json.dumps(job())
    # When the invocation has 5 s left and the provider asks for 30
    assert delivery.deliver(message(body), remaining_ms=lambda: 5_000) is EmailOutcome.THROTTLED
    # Then the original is acknowledged, a copy waits 30 s, and the key is free again
    [copy] = hops.sent
    assert (copy.body, copy.delay_seconds, copy.attributes["attempts"]) == (body, 30, 1)
    assert resources.status("bk_123", "booking_confirmed#0") == "queued"
    assert resources.drain(resources.dlq_url) == []


def test_a_throttled_copy_arriving_before_retry_after_waits_without_calling_the_provider(
    resources: Resources, provider: ScriptedProvider, clock: Clock
) -> None:
    # Given SMTP throttling (no retry-after: the stage's 30 s) and 5 s hops
    provider.script = [ProviderThrottled("smtp", 421, retry_after=None)]
    delivery = make_delivery(resources, provider, clock, MAX_DELAY_HOP_SECONDS=5, THROTTLE_BACKOFF_SECONDS=30)
    hops = HopQueue()
    delivery.dispatch.queue = hops
    body = json.dumps(job())
    assert delivery.deliver(message(body), remaining_ms=lambda: 1_000) is EmailOutcome.THROTTLED
    assert hops.sent[0].delay_seconds == 5
    # When the copy comes back after one hop, long before the 30 s are over
    clock.advance(seconds=5)
    assert delivery.deliver(message(body)) is EmailOutcome.DEFERRED
    # Then the provider was not asked again, and the copy waits for what remains (one hop at most)
    assert provider.calls == 1
    assert hops.sent[-1].delay_seconds == 5
    # And once the 30 s have passed, it goes out
    clock.advance(seconds=25)
    assert delivery.deliver(message(body)) is EmailOutcome.SENT
    assert provider.calls == 2


def test_throttling_never_delivers_after_not_after(
    resources: Resources, provider: ScriptedProvider, clock: Clock
) -> None:
    # Given an email that must not go out after 10 s from now, and a provider asking for 30
    provider.script = [ProviderThrottled("resend", 429, retry_after=30)]
    sleeps: list[float] = []
    delivery = make_delivery(resources, provider, clock, sleeps=sleeps)
    body = job(not_after="2026-12-01T12:00:10Z")
    # Then it is not waited for nor re-queued: it expires
    assert delivery.deliver(message(body), remaining_ms=lambda: 60_000) is EmailOutcome.EXPIRED
    assert sleeps == []
    assert resources.status("bk_123", "booking_confirmed#0") == "expired"


def test_throttling_past_the_cap_dead_letters_throttle_exhausted(
    resources: Resources, provider: ScriptedProvider, clock: Clock
) -> None:
    delivery = make_delivery(resources, provider, clock, MAX_THROTTLE_DEFERRALS=2)
    body = job()
    outcomes = []
    for _ in range(3):
        provider.script = [ProviderThrottled("resend", 429, retry_after=30)]
        outcomes.append(delivery.deliver(message(body), remaining_ms=lambda: 1_000))
        clock.advance(seconds=30)  # each copy comes back once its retry-after has passed
    assert outcomes == [EmailOutcome.THROTTLED, EmailOutcome.THROTTLED, EmailOutcome.DEAD_LETTERED]
    [dead] = resources.drain(resources.dlq_url)
    assert attributes(dead)["failure_reason"] == "throttle_exhausted"
    assert resources.status("bk_123", "booking_confirmed#0") == "failed"
    # And once the provider recovers, a redrive sends it with a fresh throttle budget
    provider.script = [ProviderThrottled("resend", 429, retry_after=30)]
    assert delivery.deliver(message(body), remaining_ms=lambda: 1_000) is EmailOutcome.THROTTLED
    clock.advance(seconds=30)
    assert delivery.deliver(message(body)) is EmailOutcome.SENT


def test_a_batch_is_sent_concurrently(resources: Resources, clock: Clock) -> None:
    # Given a provider that only answers once ten sends are in flight together
    barrier = threading.Barrier(10, timeout=10)

    class GatheringProvider(ScriptedProvider):
        def send(self, email: Any) -> str:
            barrier.wait()
            return super().send(email)

    provider = GatheringProvider()
    delivery = make_delivery(resources, provider, clock, SEND_CONCURRENCY=10)
    records = [sqs_record(job(booking_id=f"bk_{i}")) for i in range(10)]
    # Then all ten get through (a serial consumer would break the barrier)
    assert consume_batch(sqs_event(*records), None, consumer_of(delivery)) == {"batchItemFailures": []}
    assert len(provider.sent) == 10


def test_a_transient_record_is_the_only_one_reported(resources: Resources, clock: Clock) -> None:
    class FailsOne(ScriptedProvider):
        def send(self, email: Any) -> str:
            if email.dedupe_key.startswith("bk_bad#"):
                raise TransientProviderError("resend", 503)
            return super().send(email)

    provider = FailsOne()
    delivery = make_delivery(resources, provider, clock)
    bad = sqs_record(job(booking_id="bk_bad"))
    resources.sqs.send_message(QueueUrl=resources.queue_url, MessageBody=bad["body"])
    bad["receiptHandle"] = resources.sqs.receive_message(QueueUrl=resources.queue_url)["Messages"][0][
        "ReceiptHandle"
    ]
    response = consume_batch(sqs_event(sqs_record(job(booking_id="bk_ok")), bad), None, consumer_of(delivery))
    assert response == {"batchItemFailures": [{"itemIdentifier": bad["messageId"]}]}
    assert len(provider.sent) == 1


def test_a_requeued_copy_with_an_attempts_attribute_is_handled(
    resources: Resources, provider: ScriptedProvider, clock: Clock
) -> None:
    # Given a copy the consumer re-queued earlier, carrying its attempts attribute
    provider.script = [PermanentProviderError("smtp", 550)]
    delivery = make_delivery(resources, provider, clock)
    record = sqs_record(
        job(), attributes={"email_type": "booking_confirmed", "schema": "booking-email/v1", "attempts": 3}
    )
    # When it fails for good, it is dead-lettered (not left to redeliver)
    assert consume_batch(sqs_event(record), None, consumer_of(delivery)) == {"batchItemFailures": []}
    [dead] = resources.drain(resources.dlq_url)
    # Then the DLQ copy says how many times the ledger saw the email attempted
    assert attributes(dead)["failure_reason"] == "provider_rejected"
    assert attributes(dead)["attempts"] == "1"


def test_an_early_copy_is_requeued_with_its_attempts(
    resources: Resources, provider: ScriptedProvider, clock: Clock
) -> None:
    delivery = make_delivery(resources, provider, clock, MAX_DELAY_HOP_SECONDS=5)
    hops = HopQueue()
    delivery.dispatch.queue = hops
    record = sqs_record(
        job(deliver_at=T0 + timedelta(seconds=30)),
        attributes={"email_type": "booking_confirmed", "schema": "booking-email/v1", "attempts": 2},
    )
    assert consume_batch(sqs_event(record), None, consumer_of(delivery)) == {"batchItemFailures": []}
    [hop] = hops.sent
    assert (hop.delay_seconds, dict(hop.attributes)) == (
        5,
        {"email_type": "booking_confirmed", "schema": "booking-email/v1", "attempts": 2},
    )


def test_a_record_whose_requeue_fails_is_not_acknowledged(
    resources: Resources, provider: ScriptedProvider, clock: Clock
) -> None:
    delivery = make_delivery(resources, provider, clock)
    delivery.dispatch.queue = RefusingQueue()
    with pytest.raises(RetryLater):
        delivery.deliver(message(job(deliver_at=T0 + timedelta(minutes=5))))


def test_a_transient_failure_is_retried_even_when_the_backoff_cannot_be_set(
    resources: Resources, provider: ScriptedProvider, clock: Clock
) -> None:
    provider.script = [TransientProviderError("resend", 503)]
    delivery = make_delivery(resources, provider, clock)
    # Given a receipt handle SQS does not know (the visibility change fails)
    with pytest.raises(RetryLater):
        delivery.deliver(message(job(), receive_count=2))
    assert resources.status("bk_123", "booking_confirmed#0") == "queued"


def test_expiring_an_email_under_a_dead_workers_lease_clears_the_lease(
    resources: Resources, provider: ScriptedProvider, clock: Clock
) -> None:
    # Given a worker died holding the key, and the email's not_after has passed since
    deliveries = ledger(resources)
    ref = EmailRef("bk_123", "booking_confirmed", 0)
    stale = deliveries.claim(ref, "dead-worker", T0, T0, lease_seconds=60).record
    clock.advance(minutes=5)
    body = job(not_after="2026-12-01T12:01:00Z")
    assert make_delivery(resources, provider, clock).deliver(message(body)) is EmailOutcome.EXPIRED
    # When the dead worker's late write arrives, it cannot undo the expiry
    assert stale.lease_token is not None
    late = deliveries.finish(ref, stale.lease_token, Change.FAIL, clock.now, "provider_rejected")
    assert not late.done
    assert late.record.status is EmailStatus.EXPIRED
    assert resources.status("bk_123", "booking_confirmed#0") == "expired"


_throttled_bookings = itertools.count()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    header=st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E))
    | st.from_regex(r"\A[0-9]{1,400}\Z")
)
def test_whatever_retry_after_a_provider_sends_one_copy_waits_and_the_original_is_done(
    resources: Resources, clock: Clock, header: str
) -> None:
    # Given a provider throttling with that retry-after, and an invocation with no time to wait
    provider = ScriptedProvider(
        script=[ProviderThrottled("resend", 429, retry_after=parse_retry_after(header))]
    )
    delivery = make_delivery(resources, provider, clock)
    hops = HopQueue()
    delivery.dispatch.queue = hops
    booking_id = f"bk_throttled_{next(_throttled_bookings)}"
    # When the email is delivered
    outcome = delivery.deliver(message(job(booking_id=booking_id)), remaining_ms=lambda: 1_000)
    # Then the original is done (no exception, nothing left to SQS) and exactly one copy waits,
    # at most one hop out, while the key is held off for at most an hour
    assert outcome is EmailOutcome.THROTTLED
    [copy] = hops.sent
    assert 0 <= copy.delay_seconds <= 900
    item = resources.dynamodb.get_item(
        TableName=resources.table,
        Key={"booking_id": {"S": booking_id}, "email_key": {"S": "booking_confirmed#0"}},
    )["Item"]
    assert item["status"]["S"] == "queued"
    assert int(item["not_before"]["N"]) <= int(clock.now.timestamp()) + 3600
