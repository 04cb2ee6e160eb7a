"""Retention never shrinks (README.md, "How delivery stays exactly-once"): a record lives at least
30 days past the latest of every write's time and every ``deliver_at`` published for its key,
whatever order publishes, cancels, claims and sends come in, so a cancelled key stays cancelled
while any copy of it can still arrive.

The email routes' logic and the consumer run on the deliveries table in moto with the test's
clock; re-queued copies are kept, not delayed, so a test replays time as it likes.
"""

from __future__ import annotations

import itertools
import json
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from booking_durability.emails.delivery import EmailOutcome, IncomingMessage
from booking_durability.emails.models import EmailRef, EmailRequest
from booking_durability.emails.ports import OutgoingMessage
from booking_durability.emails.requests import (
    AlreadySent,
    EmailOutbox,
    SendInProgress,
    cancel_booking_emails,
    cancel_email,
    request_email,
)
from booking_durability.observability import metrics
from tests.builders import T0, email_request, job
from tests.integration.conftest import Clock, Resources, ScriptedProvider, ledger, make_delivery

DAY = timedelta(days=1)
RETENTION_SECONDS = 30 * 24 * 3600  # README.md: 30 days
LEASE_SECONDS = 120


class KeptQueue:
    """The email queue, keeping what is sent to it for the test to replay."""

    def __init__(self) -> None:
        self.sent: list[OutgoingMessage] = []

    def send(self, message: OutgoingMessage) -> str:
        self.sent.append(message)
        return "m"

    def change_visibility(self, receipt_handle: str, seconds: int) -> None:
        return None


@dataclass
class Key:
    """One dedupe key, driven through the routes' logic and the consumer at the test's clock."""

    resources: Resources
    booking_id: str
    clock: Clock = field(default_factory=Clock)
    provider: ScriptedProvider = field(default_factory=ScriptedProvider)

    @property
    def ref(self) -> EmailRef:
        return EmailRef(self.booking_id, "booking_confirmed", 0)

    def outbox(self) -> EmailOutbox:
        return EmailOutbox(records=ledger(self.resources), queue=KeptQueue(), max_hop_seconds=900)

    def post(self, deliver_at: datetime) -> str:
        """``POST /v1/emails`` for the key; the status it answers."""
        request = EmailRequest.model_validate(
            email_request(booking_id=self.booking_id, deliver_at=deliver_at.isoformat())
        )
        return str(request_email(self.outbox(), request, self.clock.now).status)

    def delete(self) -> bool:
        """``DELETE`` of the key; whether it was cancelled."""
        try:
            cancel_email(self.outbox(), self.ref, self.clock.now)
        except (AlreadySent, SendInProgress):
            return False
        return True

    def delete_booking(self) -> bool:
        return (
            self.ref.dedupe_key
            in cancel_booking_emails(self.outbox(), self.booking_id, self.clock.now).cancelled
        )

    def consume(self, deliver_at: datetime) -> EmailOutcome:
        """A copy of the job, published straight to SQS with ``deliver_at``, arriving now."""
        delivery = make_delivery(self.resources, self.provider, self.clock, LEASE_SECONDS=LEASE_SECONDS)
        delivery.dispatch.queue = KeptQueue()
        body = json.dumps(job(booking_id=self.booking_id, deliver_at=deliver_at))
        return delivery.deliver(IncomingMessage("m", "rh", body, receive_count=1))

    def expires_at(self) -> int | None:
        item = self.resources.dynamodb.get_item(
            TableName=self.resources.table,
            Key={"booking_id": {"S": self.booking_id}, "email_key": {"S": "booking_confirmed#0"}},
        ).get("Item")
        return int(item["expires_at"]["N"]) if item is not None else None

    def status(self) -> str | None:
        return self.resources.status(self.booking_id, "booking_confirmed#0")


def days_after(moment: datetime, days: float = 30) -> int:
    return int((moment + timedelta(days=days)).timestamp())


_keys = itertools.count()


@pytest.fixture
def key(resources: Resources) -> Key:
    metrics.clear_metrics()
    return Key(resources, f"bk_ret_{next(_keys)}")


def test_a_cancel_on_day_1_keeps_the_tombstone_past_a_delivery_due_on_day_45(key: Key) -> None:
    # Given an email published on day 0 for day 45
    due = T0 + 45 * DAY
    assert key.post(due) == "queued"
    # When it is cancelled on day 1
    key.clock.advance(days=1)
    assert key.delete()
    # Then the tombstone outlives the delivery time by 30 days, not the cancel
    assert key.expires_at() == days_after(due)
    # And when the copy arrives on day 45, it is skipped, never delivered
    key.clock.now = due
    assert key.consume(due) is EmailOutcome.CANCELLED
    assert key.provider.sent == []


def test_publishing_again_with_an_earlier_deliver_at_never_lowers_the_retention(key: Key) -> None:
    # Given an email published for day 45, then published again for day 10
    assert key.post(T0 + 45 * DAY) == "queued"
    key.clock.advance(hours=1)
    assert key.post(T0 + 10 * DAY) == "queued"
    # Then its record is still kept until 30 days past day 45
    assert key.expires_at() == days_after(T0 + 45 * DAY)
    # And a cancel after that keeps it too, so the day-45 copy is skipped
    key.clock.advance(days=2)
    assert key.delete()
    assert key.expires_at() == days_after(T0 + 45 * DAY)
    key.clock.now = T0 + 45 * DAY
    assert key.consume(T0 + 45 * DAY) is EmailOutcome.CANCELLED


def test_a_cancel_before_a_job_published_straight_to_sqs_is_kept_for_as_long_as_its_copies_hop(
    key: Key,
) -> None:
    # Given a key cancelled (a tombstone) on day 0, and a job for day 45 published straight to SQS
    assert key.delete()
    assert key.expires_at() == days_after(T0)
    # When the consumer first sees the job, and re-queues it toward day 45
    key.clock.advance(minutes=1)
    assert key.consume(T0 + 45 * DAY) is EmailOutcome.DEFERRED
    # Then the tombstone is kept until 30 days past that deliver_at, and the job is never sent
    assert key.expires_at() == days_after(T0 + 45 * DAY)
    key.clock.now = T0 + 45 * DAY
    assert key.consume(T0 + 45 * DAY) is EmailOutcome.CANCELLED
    assert key.provider.sent == []


def test_a_post_refused_by_a_tombstone_raises_it_and_the_whole_booking_cancel_never_lowers_it(
    key: Key,
) -> None:
    assert key.delete()
    # When the booking app posts the cancelled key again, for day 45
    key.clock.advance(hours=1)
    assert key.post(T0 + 45 * DAY) == "cancelled"
    assert key.expires_at() == days_after(T0 + 45 * DAY)
    # And cancels the booking's emails on day 2
    key.clock.advance(days=2)
    assert key.delete_booking()
    assert key.expires_at() == days_after(T0 + 45 * DAY)


def test_a_claim_keeps_the_record_30_days_past_the_end_of_its_lease_and_a_send_keeps_that(key: Key) -> None:
    assert key.consume(T0) is EmailOutcome.SENT
    assert key.expires_at() == days_after(T0 + timedelta(seconds=LEASE_SECONDS))


# -- any order --------------------------------------------------------------------------------

OPERATIONS = st.one_of(
    st.tuples(st.just("post"), st.integers(0, 60)),  # deliver_at, days from T0
    st.tuples(st.just("consume"), st.integers(0, 60)),  # a copy published straight to SQS
    st.tuples(st.just("delete"), st.just(0)),
    st.tuples(st.just("delete_booking"), st.just(0)),
    st.tuples(st.just("advance"), st.integers(1, 20 * 24)),  # hours
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations=st.lists(OPERATIONS, min_size=1, max_size=8))
def test_in_any_order_retention_never_shrinks_and_a_cancelled_key_is_never_sent(
    resources: Resources, operations: list[tuple[str, int]]
) -> None:
    key = Key(resources, f"bk_any_{next(_keys)}")
    required = 0  # what the record must be kept to at least, from what the key was written for
    kept = 0  # the longest retention seen so far
    cancelled_until: int | None = None  # a cancelled key, while its record must be kept
    for operation, value in operations:
        now = key.clock.now
        moment = int(now.timestamp())
        if operation == "advance":
            key.clock.advance(hours=value)
            continue
        deliver_at = T0 + value * DAY
        if operation == "post":
            key.post(deliver_at)
            required = max(
                required, moment + RETENTION_SECONDS, int(deliver_at.timestamp()) + RETENTION_SECONDS
            )
        elif operation in ("delete", "delete_booking"):
            done = key.delete() if operation == "delete" else key.delete_booking()
            # A key's DELETE always writes (a tombstone, or refused); a booking's skips what it
            # cannot cancel
            if done or operation == "delete":
                required = max(required, moment + RETENTION_SECONDS)
            if done:
                cancelled_until = max(cancelled_until or 0, required)
        else:
            existed = key.expires_at() is not None
            outcome = key.consume(deliver_at)
            # A cancelled key whose record must still be kept is never sent
            if cancelled_until is not None and moment <= cancelled_until:
                assert outcome is not EmailOutcome.SENT, (operations, operation, value)
            if outcome is EmailOutcome.DEFERRED:
                if existed:  # a hop keeps an existing record for its deliver_at, creates none
                    required = max(required, int(deliver_at.timestamp()) + RETENTION_SECONDS)
            else:
                required = max(
                    required,
                    moment + LEASE_SECONDS + RETENTION_SECONDS,
                    int(deliver_at.timestamp()) + RETENTION_SECONDS,
                )
        expires_at = key.expires_at()
        if expires_at is None:
            continue
        # Then no write lowered the record's retention, and it covers all it was written for
        assert expires_at >= kept, (operations, operation, value)
        assert expires_at >= required, (operations, operation, value)
        kept = expires_at
        if key.status() == "cancelled":
            cancelled_until = max(cancelled_until or 0, expires_at)


def test_racing_writes_leave_the_longest_retention_any_of_them_asked_for(resources: Resources) -> None:
    # Given a key queued for day 5, and writers racing on it at once: publishes for days 10 to 40
    # and cancels (each asking for 30 days from now, less than the publishes)
    key = Key(resources, f"bk_race_{next(_keys)}")
    key.post(T0 + 5 * DAY)
    barrier = threading.Barrier(8, timeout=10)
    records = ledger(resources)

    def publish(days: int) -> None:
        barrier.wait()
        records.queue(key.ref, f"job-{days}", T0, T0 + days * DAY)

    def cancel() -> None:
        barrier.wait()
        records.cancel(key.ref, T0)

    writers = [threading.Thread(target=publish, args=(days,)) for days in (10, 20, 30, 40)]
    writers += [threading.Thread(target=cancel) for _ in range(4)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    # Then whatever order they landed in, the record is kept 30 days past day 40
    assert key.expires_at() == days_after(T0 + 40 * DAY)
