"""Where each item of the reservations table lives: every ``pk``/``sk`` and index key the stores
write or read is built here, and nowhere else.

- ``VENUE#{venue_id}`` / ``CURRENT`` and ``VERSION#{n:08d}``: a venue's current version and each
  version it had.
- ``OWN#{venue_id}#{YYYY-MM-DD}`` / ``{HH}#{table_id}``: who owns a table in an hour bucket.
- ``HOLD#{hold_id}`` / ``HOLD`` and ``BOOKING#{booking_id}`` / ``BOOKING``: a hold, a booking.
- ``IDEMPOTENCY#{key}`` / ``CONFIRM``: what an ``Idempotency-Key`` is bound to.
- ``OUTBOX#{event_id}`` / ``EVENT``: a drift event waiting for the table's stream.

Standard library only, like the names the stacks share with the runtime.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from booking_durability.reservations.ownership import Slot

Key = dict[str, str]

CURRENT_VENUE = "CURRENT"
VENUE_VERSION_PREFIX = "VERSION#"
HOLD_KEY_PREFIX = "HOLD#"
BOOKING_KEY_PREFIX = "BOOKING#"
OUTBOX_KEY_PREFIX = "OUTBOX#"

#: The sparse index of open drift flows, as ``stacks/reservations_table.py`` declares it (an
#: infrastructure test keeps the two equal): partition ``open_flow`` (always ``OPEN_FLOW``),
#: sort ``flow_due`` (epoch seconds). Only holds with an open flow carry these attributes.
OPEN_FLOWS_INDEX = "open-flows"
OPEN_FLOW_ATTRIBUTE = "open_flow"
FLOW_DUE_ATTRIBUTE = "flow_due"
OPEN_FLOW = "open"


def venue_partition(venue_id: str) -> str:
    return f"VENUE#{venue_id}"


def venue_key(venue_id: str, version: int | None = None) -> Key:
    """The venue's current version, or version ``version``."""
    sk = CURRENT_VENUE if version is None else f"{VENUE_VERSION_PREFIX}{version:08d}"
    return {"pk": venue_partition(venue_id), "sk": sk}


def slot_day_partition(venue_id: str, day: date) -> str:
    """The partition of every ownership record of the venue's tables on ``day``."""
    return f"OWN#{venue_id}#{day:%Y-%m-%d}"


def slot_hour_prefix(hour: datetime) -> str:
    """The sort keys of every table's record in the bucket starting at ``hour`` begin so."""
    return f"{hour:%H}#"


def slot_key(venue_id: str, slot: Slot) -> Key:
    sk = f"{slot_hour_prefix(slot.bucket)}{slot.table_id}"
    return {"pk": slot_day_partition(venue_id, slot.bucket.date()), "sk": sk}


def slot_of(day: date, sk: str) -> Slot:
    """The slot whose record on ``day`` has sort key ``sk``."""
    hour, _, table_id = sk.partition("#")
    return Slot(datetime(day.year, day.month, day.day, int(hour), tzinfo=UTC), table_id)


def slot_label(slot: Slot) -> str:
    """How a transaction names the write of ``slot``'s record (what ``WriteConflict`` refuses)."""
    return f"slot {slot.table_id}@{slot.bucket:%Y-%m-%dT%H}"


def hold_key(hold_id: str) -> Key:
    return {"pk": f"{HOLD_KEY_PREFIX}{hold_id}", "sk": "HOLD"}


def hold_id_of(pk: str) -> str:
    return pk.removeprefix(HOLD_KEY_PREFIX)


def booking_key(booking_id: str) -> Key:
    return {"pk": f"{BOOKING_KEY_PREFIX}{booking_id}", "sk": "BOOKING"}


def idempotency_record_key(key: str) -> Key:
    return {"pk": f"IDEMPOTENCY#{key}", "sk": "CONFIRM"}


def outbox_key(event_id: str) -> Key:
    return {"pk": f"{OUTBOX_KEY_PREFIX}{event_id}", "sk": "EVENT"}
