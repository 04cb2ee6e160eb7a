"""What a pass does to a selected letter: redrive it (send a copy to the source queue, then
delete it) or discard it (delete it). Sends are paced by ``RateLimiter``.

Send first, then delete: an interruption in between leaves the letter on both queues, never on
neither. The copy that then goes twice through the consumer is delivered once, because the
deliveries ledger's dedupe key (``{booking_id}#{email_type}#{revision}``) is claimed before any
send; a drift event is notified once because its ``webhook-id`` / email dedupe key is the event's.

The tool moves letters itself, one by one, rather than through SQS's ``StartMessageMoveTask``:
a move task takes every letter, so it cannot leave the permanent reasons to ``--force`` nor say
which letter it moved, and it keeps ``failure_reason`` on the copies.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from booking_durability.emails.ports import MessageQueue, OutgoingMessage
from booking_durability.errors import InfrastructureError
from operations.dead_letters import DeadLetter, QueueKind, redriven_attributes
from operations.sweep import DeadLetterQueue, SentNotDeleted


@dataclass
class RateLimiter:
    """At most ``per_second`` calls of ``wait`` return per second, evenly spaced (no bursts)."""

    per_second: float
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    _next: float | None = None

    def __post_init__(self) -> None:
        if self.per_second <= 0:
            raise ValueError("the rate must be positive")

    def wait(self) -> None:
        now = self.clock()
        if self._next is not None and now < self._next:
            self.sleep(self._next - now)
            now = self._next
        self._next = now + 1 / self.per_second


@dataclass
class Redrive:
    """Send a copy of the letter to ``source`` (without ``failure_reason``), then delete it."""

    kind: QueueKind
    dlq: DeadLetterQueue
    source: MessageQueue
    limiter: RateLimiter

    def __call__(self, letter: DeadLetter) -> str:
        self.limiter.wait()
        # Due at once: the consumer re-checks deliver_at and hops again if it is still early.
        copy_id = self.source.send(OutgoingMessage(letter.body, redriven_attributes(self.kind, letter)))
        try:
            self.dlq.delete(letter)
        except InfrastructureError as exc:
            raise SentNotDeleted(copy_id, str(exc) or exc.code) from None
        return copy_id


@dataclass
class Discard:
    """Delete the letter."""

    dlq: DeadLetterQueue

    def __call__(self, letter: DeadLetter) -> None:
        self.dlq.delete(letter)
