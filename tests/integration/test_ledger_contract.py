"""The deliveries ledger's contract, held by both implementations: ``EmailRecordsTable`` on
DynamoDB (moto) and the in-memory ``tests.fakes.deliveries.InMemoryLedger``. Exclusive claims,
lease-holder-only changes, ``sent`` for ever, retention that never shrinks, expiry by time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from booking_durability.adapters.deliveries_table import EmailRecordsTable
from booking_durability.adapters.dynamodb import DynamoTable
from booking_durability.emails.ledger import Change
from booking_durability.emails.models import EmailRef, EmailStatus
from tests.fakes.deliveries import InMemoryLedger
from tests.integration.conftest import Resources

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
REF = EmailRef("bk_1", "booking_confirmed", 0)
LEASE = 60
Ledger = EmailRecordsTable | InMemoryLedger


@pytest.fixture(params=["dynamodb", "memory"])
def ledger(request: pytest.FixtureRequest) -> Ledger:
    if request.param == "memory":
        return InMemoryLedger()
    resources: Resources = request.getfixturevalue("resources")
    return EmailRecordsTable(DynamoTable(resources.table, resources.dynamodb))


def test_a_key_is_claimed_once_until_its_lease_runs_out(ledger: Ledger) -> None:
    first = ledger.claim(REF, "job-1", NOW, NOW, LEASE)
    assert first.done
    assert (first.record.status, first.record.attempts) == (EmailStatus.SENDING, 1)
    # While the lease runs, another claim is refused and told who holds it
    second = ledger.claim(REF, "job-2", NOW + timedelta(seconds=30), NOW, LEASE)
    assert not second.done
    assert second.record.lease_token == first.record.lease_token
    # Once it ran out (the holder died), the key is taken over
    taken = ledger.claim(REF, "job-2", NOW + timedelta(seconds=LEASE + 1), NOW, LEASE)
    assert taken.done
    assert taken.record.attempts == 2
    assert taken.record.lease_token != first.record.lease_token


def test_only_the_lease_holder_finishes_or_releases(ledger: Ledger) -> None:
    claimed = ledger.claim(REF, "job-1", NOW, NOW, LEASE)
    token = claimed.record.lease_token
    assert token is not None
    stranger = ledger.finish(REF, "not-the-token", Change.FAIL, NOW, "provider_rejected")
    assert not stranger.done
    assert stranger.record.status is EmailStatus.SENDING
    # A throttled release keeps the key from a claim until then, and counts the deferral
    until = NOW + timedelta(seconds=120)
    assert ledger.release(REF, token, NOW, throttled_until=until).done
    assert not ledger.claim(REF, "job-2", NOW + timedelta(seconds=60), NOW, LEASE).done
    again = ledger.claim(REF, "job-2", until, NOW, LEASE)
    assert again.done
    assert again.record.throttle_deferrals == 1
    assert again.record.lease_token is not None
    assert ledger.finish(REF, again.record.lease_token, Change.FAIL, until, "provider_rejected").done
    record = ledger.record(REF, until)
    assert record is not None
    assert record.status is EmailStatus.FAILED


def test_sent_is_for_ever_and_counts_as_sent(ledger: Ledger) -> None:
    ledger.claim(REF, "job-1", NOW, NOW, LEASE)
    ledger.mark_sent(REF, NOW)
    for refused in (
        ledger.claim(REF, "job-2", NOW + timedelta(hours=1), NOW, LEASE),
        ledger.queue(REF, "job-2", NOW, NOW),
        ledger.cancel(REF, NOW),
    ):
        assert not refused.done
        assert refused.record.status is EmailStatus.SENT
    assert ledger.sent_or_sending("bk_1", ["booking_confirmed"], NOW, exclude="bk_1#other#0")
    assert not ledger.sent_or_sending("bk_1", ["booking_confirmed"], NOW, exclude=REF.dedupe_key)
    assert not ledger.sent_or_sending("bk_1", ["booking_cancelled"], NOW, exclude="x")


def test_retention_never_shrinks_and_a_record_past_it_is_none(ledger: Ledger) -> None:
    # Given an email queued for delivery in 60 days, then cancelled today
    later = NOW + timedelta(days=60)
    assert ledger.queue(REF, "job-1", NOW, later).done
    assert ledger.cancel(REF, NOW).done
    # Then it is kept 30 days past the delivery it was queued for, not past today
    kept = ledger.record(REF, NOW + timedelta(days=45))
    assert kept is not None
    assert kept.status is EmailStatus.CANCELLED
    assert [r.status for r in ledger.records_of_booking("bk_1", NOW + timedelta(days=45))] == [
        EmailStatus.CANCELLED
    ]
    # And past that it counts as no record: the key may be used again
    gone = NOW + timedelta(days=91)
    assert ledger.record(REF, gone) is None
    assert ledger.records_of_booking("bk_1", gone) == []
    assert ledger.claim(REF, "job-2", gone, gone, LEASE).done


def test_a_refused_holder_change_on_no_record_is_not_guessed(ledger: Ledger) -> None:
    from booking_durability.errors import StoreUnavailable

    with pytest.raises(StoreUnavailable):
        ledger.finish(REF, "token", Change.FAIL, NOW, "provider_rejected")
