"""The record a status change returns is the record it stored: the ledger has DynamoDB send back
the item as it was, not as it is (nothing at all for a key claimed the first time), and works out
what its own write made of it (``adapters/deliveries_table.py``, ``_Write.applied``)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from booking_durability.adapters.deliveries_table import EmailRecordsTable, record_of, ref_key
from booking_durability.emails.ledger import Change, StatusWrite
from booking_durability.emails.models import EmailRef
from tests.builders import T0
from tests.integration.conftest import Resources, ledger

REF = EmailRef("booking-1", "booking_confirmed", 1)
LEASE = 300


def claim(table: EmailRecordsTable, later: timedelta = timedelta()) -> StatusWrite:
    return table.claim(REF, "job-1", T0 + later, T0 + later, LEASE)


#: Ways a key can stand before the change under test, each made through the ledger itself.
BEFORE: dict[str, Callable[[EmailRecordsTable], object]] = {
    "no item": lambda table: None,
    "queued": lambda table: table.queue(REF, "job-0", T0, T0),
    "throttled, then free again": lambda table: table.release(
        REF, claim(table).record.lease_token or "", T0, throttled_until=T0 + timedelta(seconds=5)
    ),
    "failed": lambda table: table.finish(
        REF, claim(table).record.lease_token or "", Change.FAIL, T0, "provider_rejected"
    ),
    "abandoned by a sender": lambda table: claim(table, -timedelta(seconds=LEASE + 60)),
    "past its retention": lambda table: claim(table, -timedelta(days=400)),
    "sent": lambda table: table.mark_sent(REF, T0) if claim(table).done else None,
    "cancelled": lambda table: table.cancel(REF, T0),
}

CHANGES: dict[str, Callable[[EmailRecordsTable], StatusWrite]] = {
    "claim": lambda table: claim(table, timedelta(seconds=30)),
    "queue": lambda table: table.queue(REF, "job-2", T0 + timedelta(seconds=30), T0 + timedelta(days=2)),
    "cancel": lambda table: table.cancel(REF, T0 + timedelta(seconds=30)),
    "expire unsent": lambda table: table.expire_unsent(REF, T0 + timedelta(seconds=30), T0),
}


@pytest.mark.parametrize("before", BEFORE)
@pytest.mark.parametrize("change", CHANGES)
def test_an_accepted_change_returns_the_record_it_stored(
    resources: Resources, before: str, change: str
) -> None:
    # Given a key in some state
    table = ledger(resources)
    BEFORE[before](table)
    # When a status change is written
    written = CHANGES[change](table)
    # Then an accepted one answers with what the table now holds, field for field
    stored = table.table.get(ref_key(REF))
    if written.done:
        assert stored is not None
        assert written.record == record_of(stored)
    else:
        # A refused one names what stood in the way, as it stands.
        assert stored is not None
        assert written.record.status == record_of(stored).status
