"""What a pass does to a selected letter: redrive it (send a copy to the source queue, then
delete it) or discard it (delete it). Sends are paced by ``RateLimiter``.

Send first, then delete: an interruption in between leaves the letter on both queues, never on
neither. The copy that then goes twice through the consumer is delivered once, because the
deliveries ledger's dedupe key (``{booking_id}#{email_type}#{revision}``) is claimed before any
send; a drift event is notified once because its ``webhook-id`` / email dedupe key is the event's.

When everything is to move, SQS's own ``StartMessageMoveTask`` does it server-side, paced at the
same rate; where it is not available (moto, or a role without the permission) the pass does.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from booking_durability.emails.ports import MessageQueue, OutgoingMessage
from booking_durability.errors import InfrastructureError
from booking_durability.operations.dead_letters import DeadLetter, redriven_attributes
from booking_durability.operations.selection import Selection
from booking_durability.operations.sweep import DeadLetterQueue, SentNotDeleted


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

    dlq: DeadLetterQueue
    source: MessageQueue
    limiter: RateLimiter

    def __call__(self, letter: DeadLetter) -> str:
        self.limiter.wait()
        # Due at once: the consumer re-checks deliver_at and hops again if it is still early.
        copy_id = self.source.send(OutgoingMessage(letter.body, redriven_attributes(letter)))
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


def moves_everything(selection: Selection, *, dry_run: bool, limit: int | None) -> bool:
    """Whether a redrive may be handed to ``StartMessageMoveTask`` (it cannot select)."""
    return selection.everything and not dry_run and limit is None


class MoveTaskUnsupported(Exception):
    """The endpoint (or the caller's permissions) does not offer ``StartMessageMoveTask``."""


class MoveState(StrEnum):
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    CANCELLING = "CANCELLING"
    CANCELLED = "CANCELLED"
    FAILED = "FAILED"


@dataclass(frozen=True)
class MoveStatus:
    state: MoveState
    moved: int
    to_move: int | None
    failure: str | None = None

    @property
    def finished(self) -> bool:
        return self.state not in (MoveState.RUNNING, MoveState.CANCELLING)


class MoveTasks(Protocol):
    """SQS's server-side redrive (``adapters.dead_letters.SqsDeadLetterQueue``)."""

    def start_move_task(self, per_second: int) -> str:
        """Start moving every letter back to the source queue; raises ``MoveTaskUnsupported``."""
        ...

    def move_task_status(self) -> MoveStatus: ...


def follow_move_task(
    tasks: MoveTasks,
    *,
    poll_seconds: float = 2.0,
    sleep: Callable[[float], None] | None = None,
    on_progress: Callable[[MoveStatus], None] | None = None,
) -> MoveStatus:
    """Poll the DLQ's move task until it ends; returns its last status."""
    pause = sleep or time.sleep
    while True:
        status = tasks.move_task_status()
        if on_progress is not None:
            on_progress(status)
        if status.finished:
            return status
        pause(poll_seconds)
