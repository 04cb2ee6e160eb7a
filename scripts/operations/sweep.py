"""One pass over a DLQ: every letter that was there when the pass began is looked at once, the
selected ones acted on, the rest left where they were.

SQS has no way to read a queue without receiving it, so a letter being looked at is hidden for
``hide_for`` seconds (its visibility timeout) and made visible again when the pass ends, acted on
or not; a pass that dies without that step only leaves letters hidden until ``hide_for`` runs
out, after which SQS shows them again by itself. Nothing is ever deleted but by the action.

Letters stay hidden for the whole pass (their visibility is extended while it lasts), so none is
received twice and the pass ends when a receive finds no letter it has not seen.

A pass acts only on the letters that were in the DLQ when it began. A letter it redrives can
fail again and be dead-lettered again while the pass goes on, under a new message id; taking it
for a new letter would move it again, and again, as fast as the consumer fails it. Two checks,
each enough alone, keep such letters out:

- the message: the consumer and the notifier dead-letter a body unchanged, so a letter whose
  body is that of one this pass moved is that letter back (clock-free), or a copy of the same
  message, which needs no second move either (the ledger delivers a message once);
- the clock: a letter SQS stamped (``SentTimestamp``) at or after the pass began, by SQS's own
  clock (``began_at``, read from SQS at the start, so the operator's clock does not matter),
  arrived during the pass.

Such letters are left in the DLQ, counted, for the next pass. Should letters keep arriving faster
than the pass can look past them, it stops looking after as many as were there when it began
(``present``) and says so.
"""

from __future__ import annotations

import hashlib
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from booking_durability.errors import InfrastructureError
from operations.dead_letters import DeadLetter
from operations.selection import Selection

#: Long enough for a batch to be acted on; short enough that an interrupted look is soon undone.
DEFAULT_HIDE_SECONDS = 30
#: ``Stopped.code`` of a pass the operator interrupted (Ctrl-C).
INTERRUPTED = "interrupted"
#: Letters that arrived during a pass it looks past, beyond those there when it began, before it
#: stops looking (one receive's worth: SQS's approximate counts may lag by a few).
ARRIVAL_MARGIN = 10


class DeadLetterQueue(Protocol):
    """A DLQ as a pass uses it (``operations.dead_letter_queues.SqsDeadLetterQueue``); raises
    ``InfrastructureError`` when SQS fails."""

    def receive(self, hide_for_seconds: int) -> Sequence[DeadLetter]:
        """Up to ten letters, each hidden from other receivers for ``hide_for_seconds``."""
        ...

    def hide(self, letters: Sequence[DeadLetter], seconds: int) -> None:
        """Set their visibility timeout: ``0`` makes them visible again at once."""
        ...

    def delete(self, letter: DeadLetter) -> None: ...


class SentNotDeleted(InfrastructureError):
    """The letter's copy is on the source queue but the letter is still in the DLQ."""

    code = "SENT_NOT_DELETED"

    def __init__(self, copy_id: str, cause: str) -> None:
        super().__init__(f"sent as {copy_id}, not deleted: {cause}")
        self.copy_id = copy_id
        self.cause = cause


#: What a pass does to a selected letter: it ends by deleting the letter from the DLQ, or raises
#: ``InfrastructureError``; returns the id of the copy it sent, if any.
Action = Callable[[DeadLetter], str | None]


@dataclass(frozen=True)
class Done:
    letter: DeadLetter
    copy_id: str | None = None


@dataclass(frozen=True)
class Stopped:
    """Why a pass ended early: ``code`` (an error code, or ``interrupted``), the letter being
    acted on, and, when the send had gone through, its copy's id (the letter is then both on the
    source queue and still in the DLQ: a re-run moves it again, the ledger stops a second email)."""

    code: str
    letter: DeadLetter | None = None
    copy_id: str | None = None


@dataclass
class Pass:
    """What a pass saw and did."""

    #: Letters that were in the DLQ when the pass began, looked at.
    examined: int = 0
    selected: list[DeadLetter] = field(default_factory=list)
    done: list[Done] = field(default_factory=list)
    #: Selected letters the pass was not allowed to act on (``withhold``): left in the DLQ.
    withheld: list[DeadLetter] = field(default_factory=list)
    #: Letters that reached the DLQ after the pass began (by SQS's clock): left for the next pass.
    late: int = 0
    #: Letters carrying the message of one this pass moved (dead-lettered again, or a copy): left.
    returned: int = 0
    #: Whether the pass stopped looking because letters kept arriving (see ``present``).
    gave_up: bool = False
    stopped: Stopped | None = None
    #: Letters that could not be made visible again (SQS shows them after ``hide_for``).
    release_failed: str | None = None


@dataclass
class _Hidden:
    letter: DeadLetter
    since: float


@dataclass
class _HiddenLetters:
    """The letters a pass holds hidden, by message id, and the same entries oldest ``since``
    first, so that finding those due for an extension costs only the due ones.

    ``by_id`` is what is held; ``by_age`` may still list entries ``by_id`` has since dropped or
    replaced (they are skipped when reached). A pass's clock never goes back, so appending an
    entry when it is received or extended keeps ``by_age`` in order.
    """

    by_id: dict[str, _Hidden] = field(default_factory=dict)
    by_age: deque[_Hidden] = field(default_factory=deque)

    def hold(self, letter: DeadLetter, since: float) -> None:
        entry = self.by_id[letter.message_id] = _Hidden(letter, since)
        self.by_age.append(entry)

    def drop(self, message_id: str) -> None:
        del self.by_id[message_id]

    def letters(self) -> list[DeadLetter]:
        return [entry.letter for entry in self.by_id.values()]

    def due(self, now: float, after: float) -> list[_Hidden]:
        """The held entries at least ``after`` seconds old, taken off ``by_age``."""
        due: list[_Hidden] = []
        while self.by_age:
            entry = self.by_age[0]
            if self.by_id.get(entry.letter.message_id) is entry and now - entry.since < after:
                break
            self.by_age.popleft()
            if self.by_id.get(entry.letter.message_id) is entry:
                due.append(entry)
        return due


def sweep(
    queue: DeadLetterQueue,
    selection: Selection,
    now: datetime,
    act: Action | None = None,
    *,
    hide_for: int = DEFAULT_HIDE_SECONDS,
    limit: int | None = None,
    began_at: datetime | None = None,
    present: int | None = None,
    withhold: Callable[[DeadLetter], bool] | None = None,
    clock: Callable[[], float] = time.monotonic,
    on_progress: Callable[[Pass], None] | None = None,
    on_done: Callable[[Done], None] | None = None,
) -> Pass:
    """Look at every letter of ``queue`` that was there when the pass began, once (at most
    ``limit``), and ``act`` on those ``selection`` matches at ``now`` (with no ``act``, only list
    them), but those ``withhold`` keeps back. ``began_at`` is the start by SQS's clock (letters it
    stamped at or after it are left); ``present``, how many letters the DLQ held then. Stops at
    the first failure, reported in ``Pass.stopped``; every letter not acted on is made visible
    again. ``on_done`` hears of each action as soon as it is done."""
    result = Pass()
    seen: set[str] = set()
    moved: set[bytes] = set()
    hidden = _HiddenLetters()
    patience = None if present is None else present + ARRIVAL_MARGIN
    try:
        while limit is None or result.examined < limit:
            _keep_hidden(queue, hidden, clock, hide_for)
            received_at = clock()
            batch = []
            for letter in queue.receive(hide_for):
                if letter.message_id not in seen:
                    batch.append(letter)
                    seen.add(letter.message_id)
                # Held by its newest receipt handle: one seen again (it reappeared) answers to no other.
                hidden.hold(letter, received_at)
            if not batch:
                break
            for letter in batch:
                if limit is not None and result.examined >= limit:
                    break  # received but not looked at: released below
                _keep_hidden(queue, hidden, clock, hide_for)
                if _fingerprint(letter) in moved:
                    result.returned += 1
                    continue
                if began_at is not None and letter.sent_at >= began_at:
                    result.late += 1
                    continue
                result.examined += 1
                chosen = selection.matches(letter, now)
                if chosen:
                    result.selected.append(letter)
                if act is not None and chosen:
                    if withhold is not None and withhold(letter):
                        result.withheld.append(letter)
                    else:
                        try:
                            copy_id = act(letter)
                        except SentNotDeleted as exc:
                            result.stopped = Stopped(exc.cause, letter, exc.copy_id)
                            return result
                        except InfrastructureError as exc:
                            result.stopped = Stopped(_code_of(exc), letter)
                            return result
                        hidden.drop(letter.message_id)
                        if copy_id is not None:
                            moved.add(_fingerprint(letter))
                        done = Done(letter, copy_id)
                        result.done.append(done)
                        if on_done is not None:
                            on_done(done)
                if on_progress is not None:
                    on_progress(result)
            if patience is not None and result.late + result.returned > patience:
                result.gave_up = True
                break
    except InfrastructureError as exc:
        result.stopped = Stopped(_code_of(exc))
    except KeyboardInterrupt:
        # An operator's Ctrl-C: report what was done so far rather than lose it.
        result.stopped = Stopped(INTERRUPTED)
    finally:
        try:
            queue.hide(hidden.letters(), 0)
        except InfrastructureError as exc:
            result.release_failed = _code_of(exc)
    return result


def _fingerprint(letter: DeadLetter) -> bytes:
    """What identifies a letter's message across dead-letterings (kept in memory only)."""
    return hashlib.sha256(letter.body.encode("utf-8", "surrogatepass")).digest()


def _keep_hidden(
    queue: DeadLetterQueue, hidden: _HiddenLetters, clock: Callable[[], float], hide_for: int
) -> None:
    """Extend the visibility of letters past half their timeout, so none reappears mid-pass."""
    now = clock()
    due = hidden.due(now, hide_for / 2)
    if due:
        queue.hide([entry.letter for entry in due], hide_for)
        for entry in due:
            entry.since = now
            hidden.by_age.append(entry)


def _code_of(exc: InfrastructureError) -> str:
    return str(exc) or exc.code
