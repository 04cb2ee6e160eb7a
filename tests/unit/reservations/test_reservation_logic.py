"""The reservation logic end to end on the in-memory stores (``tests.fakes.reservations``, held
to the table's contract by tests/integration/test_store_contract.py): holding, releasing,
confirming, cancelling, and drift met at confirmation, recovered or swept, without moto."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from booking_durability.metric_names import DriftReason
from booking_durability.reservations import catalog, holding
from booking_durability.reservations.confirmation import ConfirmRequest, confirm_with_policy_retry
from booking_durability.reservations.drift import finish_interrupted_flows
from booking_durability.reservations.holds import HoldRequest, HoldStatus
from booking_durability.reservations.ports import BookingStatus, FlowState
from booking_durability.reservations.refusals import NoAvailabilityError, PolicyChanged
from booking_durability.reservations.venues import VenueConfig
from tests.fakes.reservations import InMemoryReservations

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
STARTS_AT = datetime(2026, 12, 24, 20, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.moment = NOW

    def __call__(self) -> datetime:
        return self.moment


def venue(buffer: int = 10, tables: int = 1, max_party_size: int = 8) -> VenueConfig:
    return VenueConfig.model_validate(
        {
            "tables": [{"id": f"T{i}", "capacity": 4, "zone": "main"} for i in range(1, tables + 1)],
            "policy": {
                "slot_minutes": 15,
                "default_duration_minutes": 90,
                "buffer_minutes": buffer,
                "max_party_size": max_party_size,
                "hold_ttl_seconds": 600,
                "allow_combinations": False,
                "bookable_zones": ["main"],
            },
        }
    )


@pytest.fixture
def store() -> InMemoryReservations:
    made = InMemoryReservations()
    catalog.save_venue(made, "casa", venue(), None, NOW)
    return made


def hold_for(store: InMemoryReservations, clock: Clock, party: int = 2, **fields: Any) -> Any:
    request = HoldRequest(venue_id="casa", party_size=party, starts_at=STARTS_AT, **fields)
    return holding.hold_tables(store, request, clock)


def test_a_table_is_held_once_and_free_again_once_released(store: InMemoryReservations) -> None:
    clock = Clock()
    first = hold_for(store, clock)
    assert first.table_ids == ("T1",)
    with pytest.raises(NoAvailabilityError):
        hold_for(store, clock)
    released = holding.release_hold(store, first.hold_id, clock)
    assert released.status is HoldStatus.RELEASED
    assert hold_for(store, clock).table_ids == ("T1",)


def test_an_expired_hold_owns_nothing(store: InMemoryReservations) -> None:
    clock = Clock()
    hold_for(store, clock)
    clock.moment = NOW + timedelta(minutes=11)
    assert hold_for(store, clock).table_ids == ("T1",)


def test_a_confirmed_booking_keeps_its_table_until_cancelled_and_cancels_once(
    store: InMemoryReservations,
) -> None:
    clock = Clock()
    hold = hold_for(store, clock)
    body = confirm_with_policy_retry(store, ConfirmRequest(hold.hold_id, "bk_1", "key-1"), clock)
    assert body["booking_id"] == "bk_1"
    assert body["policy_drift"] is None
    # A repeat answers the very same body
    again = confirm_with_policy_retry(store, ConfirmRequest(hold.hold_id, "bk_1", "key-1"), clock)
    assert again.text == body.text
    # Confirmed, the table stays owned past the hold's expiry
    clock.moment = NOW + timedelta(minutes=30)
    with pytest.raises(NoAvailabilityError):
        hold_for(store, clock)
    cancelled = holding.cancel_booking(store, "bk_1", clock)
    assert cancelled.status is BookingStatus.CANCELLED
    assert holding.cancel_booking(store, "bk_1", clock).status is BookingStatus.CANCELLED
    assert hold_for(store, clock).table_ids == ("T1",)


def test_a_policy_change_before_confirmation_is_recovered_on_a_replacement(
    store: InMemoryReservations,
) -> None:
    clock = Clock()
    hold = hold_for(store, clock)
    catalog.save_venue(store, "casa", venue(buffer=20), None, NOW)
    body = confirm_with_policy_retry(store, ConfirmRequest(hold.hold_id, "bk_1"), clock)
    assert body["policy_drift"] is not None
    assert body["hold_id"] != hold.hold_id
    original = store.hold(hold.hold_id)
    assert original is not None
    assert original.flow is not None
    assert original.flow.state is FlowState.RECOVERED
    [event] = store.outbox.values()
    assert event.type == "policy_drift.recovered"


def test_a_policy_that_no_longer_seats_the_party_ends_the_flow_at_once(store: InMemoryReservations) -> None:
    clock = Clock()
    hold = hold_for(store, clock, party=4)
    catalog.save_venue(store, "casa", venue(max_party_size=2), None, NOW)
    with pytest.raises(PolicyChanged):
        confirm_with_policy_retry(store, ConfirmRequest(hold.hold_id, "bk_1"), clock)
    [event] = store.outbox.values()
    assert (event.type, event.reason) == ("policy_drift.unrecovered", DriftReason.NO_AVAILABILITY)
    # The original's table is free again
    assert hold_for(store, clock, party=2).table_ids == ("T1",)


def test_the_sweep_ends_a_flow_whose_replacement_expired(store: InMemoryReservations) -> None:
    clock = Clock()
    hold = hold_for(store, clock)
    catalog.save_venue(store, "casa", venue(buffer=20), None, NOW)

    confirm = store.confirm

    def dying(*args: Any, **kwargs: Any) -> None:
        if kwargs.get("original") is not None:
            raise RuntimeError("the function died after the replacement was made")
        confirm(*args, **kwargs)

    # Given a confirmation that died once its replacement was made
    store.confirm = dying  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        confirm_with_policy_retry(store, ConfirmRequest(hold.hold_id, "bk_1"), clock)
    store.confirm = confirm  # type: ignore[method-assign]
    # Then the sweep leaves it while its replacement may still be confirmed, and ends it after
    finish_interrupted_flows(store, clock)
    assert store.due_flows(NOW) == []
    assert store.outbox == {}
    clock.moment = NOW + timedelta(minutes=11)
    finish_interrupted_flows(store, clock)
    original = store.hold(hold.hold_id)
    assert original is not None
    assert original.flow is not None
    assert (original.flow.state, original.flow.reason) == (FlowState.UNRECOVERED, DriftReason.INTERRUPTED)
    assert [e.reason for e in store.outbox.values()] == [DriftReason.INTERRUPTED]
    assert store.booking("bk_1") is None
    assert hold_for(store, clock).table_ids == ("T1",)
