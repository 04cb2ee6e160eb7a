"""The deliveries ledger's terms: the status changes it makes, the record it keeps of an email,
and what a status write did. The delivery logic speaks them; ``adapters.deliveries_table``
stores them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from booking_durability.emails.guest import EmailStatus


class Change(StrEnum):
    """A status change the ledger makes (``adapters.deliveries_table.TRANSITIONS`` says which
    status each writes and which states it may start from)."""

    CLAIM = "claim"  # a worker takes the key to send
    EXPIRE_UNSENT = "expire_unsent"  # a worker finds it past not_after before sending
    QUEUE = "queue"  # POST /v1/emails records it
    CANCEL = "cancel"  # DELETE /v1/emails/... (a tombstone when there was no item)
    FAIL = "fail"  # the lease holder gives up: dead-lettered
    SUPPRESS = "suppress"
    EXPIRE = "expire"
    RELEASE = "release"  # the lease holder hands it back to the queue (retry)


@dataclass(frozen=True)
class DeliveryRecord:
    """What the ledger says of one email."""

    status: EmailStatus
    dedupe_key: str = ""
    attempts: int = 0
    throttle_deferrals: int = 0
    lease_token: str | None = None
    lease_until: float | None = None
    not_before: float | None = None
    updated_at: str | None = None
    job_id: str | None = None

    def live(self, now: datetime) -> bool:
        """Whether a worker's lease on it is still running."""
        return self.status is EmailStatus.SENDING and (self.lease_until or 0) >= now.timestamp()


@dataclass(frozen=True)
class StatusWrite:
    """A status change: ``done`` with the record as written, or refused with the record that
    stood in the way (``status`` says what became of the email, or who holds it)."""

    done: bool
    record: DeliveryRecord
