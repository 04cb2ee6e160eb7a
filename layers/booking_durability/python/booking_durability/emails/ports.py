"""What the delivery logic needs from the world, as interfaces (tests hand in fakes).

The adapters in ``booking_durability.adapters`` implement them against DynamoDB and SQS.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # not at run time: the notifier sends through MessageQueue without the email models
    from booking_durability.emails.guest import EmailRef
    from booking_durability.emails.ledger import Change, DeliveryRecord, StatusWrite


@dataclass(frozen=True)
class OutgoingMessage:
    """A message for the email queue or its DLQ; attributes limited to
    docs/reference/queue-message.md#message-attributes."""

    body: str
    attributes: Mapping[str, str | int]
    delay_seconds: int = 0


class MessageQueue(Protocol):
    def send(self, message: OutgoingMessage) -> str:
        """Send; raises ``QueueSendFailed``."""
        ...

    def change_visibility(self, receipt_handle: str, seconds: int) -> None: ...


class Ledger(Protocol):
    """The deliveries ledger (``adapters.deliveries_table.DeliveryLedger``)."""

    def claim(
        self, ref: EmailRef, job_id: str, now: datetime, deliver_at: datetime, lease_seconds: int
    ) -> StatusWrite: ...

    def expire_unsent(self, ref: EmailRef, now: datetime, deliver_at: datetime) -> StatusWrite: ...

    def retain(self, ref: EmailRef, now: datetime, deliver_at: datetime) -> None:
        """Keep an existing record at least 30 days past ``deliver_at`` (never shorter)."""
        ...

    def mark_sent(self, ref: EmailRef, now: datetime) -> None: ...

    def finish(
        self, ref: EmailRef, token: str, change: Change, now: datetime, reason: str | None = None
    ) -> StatusWrite: ...

    def release(
        self, ref: EmailRef, token: str, now: datetime, *, throttled_until: datetime | None = None
    ) -> StatusWrite: ...

    def sent_or_sending(
        self, booking_id: str, email_types: Iterable[str], now: datetime, exclude: str
    ) -> bool: ...


class EmailRecords(Protocol):
    """The deliveries ledger as the email API uses it."""

    def queue(self, ref: EmailRef, job_id: str, now: datetime, deliver_at: datetime) -> StatusWrite: ...

    def cancel(self, ref: EmailRef, now: datetime) -> StatusWrite: ...

    def record(self, ref: EmailRef, now: datetime) -> DeliveryRecord | None: ...

    def records_of_booking(self, booking_id: str, now: datetime) -> list[DeliveryRecord]: ...
