"""The ``attempts`` a copy carries: the count the ledger holds, written as the DLQ tool reads it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from booking_durability.emails.dispatch import Dispatch, IncomingMessage, Letter
from booking_durability.emails.models import FailureReason
from booking_durability.emails.ports import OutgoingMessage
from booking_durability.queue_attributes import MAX_ATTEMPTS, attempts_of


class Sent:
    def __init__(self) -> None:
        self.messages: list[OutgoingMessage] = []

    def send(self, message: OutgoingMessage) -> str:
        self.messages.append(message)
        return f"m-{len(self.messages)}"

    def change_visibility(self, receipt_handle: str, seconds: int) -> None:
        raise AssertionError("not used here")


@pytest.mark.parametrize(("counted", "written"), [(5, 5), (6089, 6089), (10**7, MAX_ATTEMPTS)])
def test_a_letters_attempts_are_the_ledgers_count_as_read_back(counted: int, written: int) -> None:
    queue, dlq = Sent(), Sent()
    dispatch = Dispatch(queue, dlq, max_hop_seconds=900, clock=lambda: datetime(2026, 12, 7, tzinfo=UTC))
    message = IncomingMessage("m-0", "r-0", "{}", receive_count=5)
    dispatch.dead_letter(message, Letter(FailureReason.TRANSIENT_EXHAUSTED, counted, "booking_confirmed"))
    dispatch.requeue(message, "booking_confirmed", delay=60, attempts=counted)
    for sent in (dlq.messages[0], queue.messages[0]):
        assert sent.attributes["attempts"] == written
        # The consumer and the DLQ tool read it back as the same count
        assert attempts_of(str(sent.attributes["attempts"])) == written
