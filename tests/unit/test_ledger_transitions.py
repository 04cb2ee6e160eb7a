"""The deliveries ledger's status transitions: read from its table, the one place they live."""

from __future__ import annotations

import re

from booking_durability.adapters.deliveries_table import TRANSITIONS, State, transition_condition
from booking_durability.emails.ledger import Change
from booking_durability.emails.models import EmailStatus
from tests.builders import T0

FINISHED = {State.CANCELLED, State.SUPPRESSED, State.EXPIRED}


def starts_from(change: Change) -> frozenset[State]:
    return TRANSITIONS[change][1]


def test_a_key_is_claimed_only_when_nobody_holds_it_or_its_holder_is_gone() -> None:
    assert TRANSITIONS[Change.CLAIM][0] is EmailStatus.SENDING
    assert starts_from(Change.CLAIM) == {State.NOBODY, State.QUEUED_READY, State.FAILED, State.ABANDONED}


def test_nothing_finished_or_cancelled_is_ever_claimed_or_queued_again() -> None:
    for change in (Change.CLAIM, Change.QUEUE, Change.EXPIRE_UNSENT):
        assert not starts_from(change) & FINISHED


def test_a_failed_email_is_queued_again_and_a_live_lease_is_never_overwritten() -> None:
    assert State.FAILED in starts_from(Change.QUEUE)
    for change in (Change.CLAIM, Change.QUEUE, Change.CANCEL, Change.EXPIRE_UNSENT):
        assert State.OURS not in starts_from(change)


def test_cancel_leaves_a_tombstone_but_never_touches_a_sent_or_sending_email() -> None:
    assert State.NOBODY in starts_from(Change.CANCEL)
    assert starts_from(Change.CANCEL) >= FINISHED
    # Its condition never admits "sent", and "sending" only once the lease ran out
    condition = transition_condition(Change.CANCEL, T0)
    assert ":sent" not in condition.values
    assert not re.search(r":sent\b", condition.text)
    sending = re.findall(r"#status = :sending[^)]*", condition.text)
    assert sending == ["#status = :sending AND lease_until < :now"]
    assert "lease_token" not in condition.text


def test_only_the_lease_holder_finishes_or_releases_a_key() -> None:
    for change in (Change.FAIL, Change.SUPPRESS, Change.EXPIRE, Change.RELEASE):
        assert starts_from(change) == {State.OURS}


def test_conditions_are_built_from_the_table_with_only_the_values_they_use() -> None:
    condition = transition_condition(Change.RELEASE, T0, token="t-1")
    assert condition.text == "lease_token = :token"
    assert dict(condition.values) == {":token": "t-1"}

    claim = transition_condition(Change.CLAIM, T0)
    for placeholder in claim.values:
        assert placeholder in claim.text
    assert {":queued", ":failed", ":sending"} <= set(claim.values)
