"""Look at, redrive or discard the dead letters of the email or notifications DLQ.

    .venv/bin/python scripts/dlq.py inspect                                # the local email DLQ
    .venv/bin/python scripts/dlq.py inspect --list                         # one line per letter
    .venv/bin/python scripts/dlq.py inspect --queue notifications --list
    .venv/bin/python scripts/dlq.py redrive --reason transient_exhausted --dry-run
    .venv/bin/python scripts/dlq.py redrive --reason transient_exhausted --rate 5
    .venv/bin/python scripts/dlq.py redrive --reason provider_rejected --force \\
        --dedupe-key 'bk_42#booking_confirmed#0'                          # after fixing its cause
    .venv/bin/python scripts/dlq.py redrive                                # all but permanent ones
    .venv/bin/python scripts/dlq.py discard --reason schema_invalid --older-than 1d      # lists them
    .venv/bin/python scripts/dlq.py discard --reason schema_invalid --older-than 1d --yes
    .venv/bin/python scripts/dlq.py inspect --aws                          # BookingDurability-dev
    .venv/bin/python scripts/dlq.py inspect --aws --stack BookingDurability-prod
    .venv/bin/python scripts/dlq.py inspect --aws --queue-url URL --dlq-url URL

inspect   the queues' counts and the dead letters grouped by failure_reason, type and age
          (<1h, <1d, <7d, >=7d), with how soon SQS deletes the first of each group; --list adds
          one line per letter: message id, reason, type, dedupe key (a notification's event id),
          age, attempts, and how long SQS keeps it.
redrive   moves the selected letters back to the queue they came from (email DLQ -> email queue,
          notifications DLQ -> notifications queue), --rate per second, printing each move as it
          happens; --dry-run moves nothing. Letters with a permanent reason (email:
          invalid_json, schema_invalid, render_failed, provider_rejected; notifications:
          webhook_rejected, invalid_event) fail the same way again unless their cause was fixed:
          they move only with --force, and are otherwise counted and left.
discard   deletes the selected letters, only with --yes (and --all when nothing is selected).

Selection (every command): --reason and --type (repeatable; "unrecognized" selects letters
whose value could not be read), --older-than / --newer-than (30s, 15m, 2h, 7d, 1w, 1h30m),
--dedupe-key (email) or --event-id (notifications), and --message-id (all repeatable), --limit.
A letter without failure_reason shows "none": SQS moved it after the queue's maxReceiveCount
receives (the function crashed or timed out on it every time). Ages count from the letter's
first dead-lettering (its first_dead_lettered_at attribute; else from when it reached the DLQ),
so a redrive does not make a letter young again.

Nothing personal is ever printed: message ids, dedupe keys, event ids, ages and attribute values
the DLQ recognises only (anything else shows as "unrecognized"). An email body holds the guest's
address and name and is never parsed; a drift event's body (ids and hashes only) is read for its
type and event id.

A pass takes the letters that were in the DLQ when it began, and only those: a letter it moves
that fails again reaches the DLQ again under a new message id, and is left there for the next
pass, as is any letter that arrives during the pass. So a redrive moves each letter at most once,
and running it again is safe.

How letters are looked at: SQS cannot read a queue without receiving it, so each letter is
received hidden for 30 s (extended while the pass lasts) and made visible again when the pass
ends. Nothing is deleted but by redrive (after its copy was sent) or discard --yes. A pass killed
outright only leaves letters hidden until their 30 s run out; SQS then shows them again. While
hidden they are not counted as visible, so the DLQ alarm may blink during a long look.

How letters move: each is sent to the source queue, then deleted from the DLQ. Send first: an
interruption in between leaves the letter on both queues, never lost, and a re-run moves it
again; the consumer then delivers it once, as the deliveries ledger's dedupe key is claimed
before any send (a drift event's webhook-id or email dedupe key is the event's). A copy keeps
email_type, schema, attempts and dedupe_key, carries first_dead_lettered_at, and drops
failure_reason.

Locally the queues are found through $LOCAL_DIR/stack.json (LOCAL_DIR defaults to .local); with
--aws, credentials and region come from the usual AWS environment (AWS_PROFILE; AWS_REGION, else
AWS_DEFAULT_REGION), the queues from --queue-url and --dlq-url, or else the stack's outputs
(EmailQueueUrl, EmailDlqUrl, NotificationsQueueUrl, NotificationsDlqUrl).

Exit status: 0 done; 1 failed or stopped part-way (what was done is printed); 2 usage error, a
discard refused without --yes, or a redrive that left letters needing --force.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from pathlib import Path

from booking_durability.errors import InfrastructureError
from booking_durability.times import iso, utc_now
from operations.console import Progress, add_target_arguments, local_stack_file
from operations.dead_letter_queues import (
    QueueCounts,
    SqsDeadLetterQueue,
    locate_in_aws,
    locate_local,
)
from operations.dead_letters import (
    DeadLetter,
    QueueKind,
    is_dedupe_key,
    is_uuid,
    needs_force,
)
from operations.redrive import Discard, RateLimiter, Redrive
from operations.selection import (
    Selection,
    describe_duration,
    group,
    parse_duration,
)
from operations.stack_lookup import StackNotFound
from operations.sweep import INTERRUPTED, Action, Done, Pass, sweep

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RATE = 10.0

EXIT_OK, EXIT_FAILED, EXIT_REFUSED = 0, 1, 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    kind = QueueKind(args.queue)
    selection = selection_of(args, kind, parser)
    if args.command == "discard" and selection.everything and not args.all:
        parser.error(
            "discard needs a selection (--reason, --type, --older-than, --newer-than, "
            f"--{kind.key_name.replace('_', '-')}, --message-id) or --all"
        )
    if (args.queue_url is None) != (args.dlq_url is None) or (args.queue_url and not args.aws):
        parser.error("--queue-url and --dlq-url go together, with --aws")
    try:
        dlq = locate(args, kind)
    except StackNotFound as exc:
        print(exc, file=sys.stderr)
        return EXIT_FAILED
    tool = Tool(dlq, selection, args, now=utc_now())
    try:
        command: Callable[[], int] = getattr(tool, args.command)
        return command()
    except InfrastructureError as exc:
        print(f"stopped: {exc}", file=sys.stderr)
        return EXIT_FAILED


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    where = common.add_argument_group("which queue")
    where.add_argument(
        "--queue", choices=[kind.value for kind in QueueKind], default=QueueKind.EMAIL.value,
        help="the DLQ: email (default) or notifications",
    )  # fmt: skip
    add_target_arguments(where, "queues")
    where.add_argument("--queue-url", help="with --aws and --dlq-url: the source queue's URL")
    where.add_argument("--dlq-url", help="with --aws and --queue-url: the DLQ's URL")
    where.add_argument(
        "--wait-seconds", type=int, choices=range(21), default=1, metavar="0..20",
        help="long poll of each receive (default 1; 0 may miss letters on SQS, never on moto)",
    )  # fmt: skip
    chosen = common.add_argument_group("which letters")
    chosen.add_argument(
        "--reason", action="append", default=[],
        help="failure_reason, or none, or unrecognized (repeatable)",
    )  # fmt: skip
    chosen.add_argument(
        "--type", action="append", default=[], dest="types", metavar="TYPE", help="type (repeatable)"
    )
    chosen.add_argument("--older-than", help="first dead-lettered at least this long ago (e.g. 2h, 7d)")
    chosen.add_argument("--newer-than", help="first dead-lettered less than this long ago (e.g. 30m)")
    chosen.add_argument(
        "--dedupe-key", action="append", default=[], dest="dedupe_keys", metavar="KEY",
        help="email DLQ: the letter of this dedupe key, booking_id#email_type#revision (repeatable)",
    )  # fmt: skip
    chosen.add_argument(
        "--event-id", action="append", default=[], dest="event_ids", metavar="UUID",
        help="notifications DLQ: the letter of this drift event (repeatable)",
    )  # fmt: skip
    chosen.add_argument(
        "--message-id", action="append", default=[], dest="message_ids", metavar="ID",
        help="the letter with this DLQ message id, as --list shows it (repeatable)",
    )  # fmt: skip
    chosen.add_argument("--limit", type=_positive_int, help="look at no more than this many letters")

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    inspect = commands.add_parser("inspect", parents=[common], help="counts and a grouped table")
    inspect.add_argument("--list", action="store_true", help="one line per dead letter too")
    redrive = commands.add_parser("redrive", parents=[common], help="move letters back to their queue")
    redrive.add_argument("--dry-run", action="store_true", help="print what would move, move nothing")
    redrive.add_argument("--rate", type=_positive_float, default=DEFAULT_RATE, help="letters per second (10)")
    redrive.add_argument(
        "--force", action="store_true",
        help="move letters with a permanent reason too (once their cause is fixed)",
    )  # fmt: skip
    discard = commands.add_parser("discard", parents=[common], help="delete letters (with --yes)")
    discard.add_argument("--yes", action="store_true", help="really delete them")
    discard.add_argument("--all", action="store_true", help="with no selection: every letter")
    return parser


def selection_of(args: argparse.Namespace, kind: QueueKind, parser: argparse.ArgumentParser) -> Selection:
    for given, known, what in (
        (args.reason, kind.selectable_reasons, "reason"),
        (args.types, kind.selectable_types, "type"),
    ):
        unknown = sorted(set(given) - set(known))
        if unknown:
            # The operator's own argument, echoed back: it is theirs, not a guest's.
            parser.error(f"unknown {what} {', '.join(unknown)} for the {kind} DLQ: one of {', '.join(known)}")
    keys = _keys_of(args, kind, parser)
    try:
        older = parse_duration(args.older_than) if args.older_than else None
        newer = parse_duration(args.newer_than) if args.newer_than else None
    except ValueError as exc:
        parser.error(str(exc))
    message_ids = [message_id.lower() for message_id in args.message_ids]
    wrong = sum(not is_uuid(message_id) for message_id in message_ids)
    if wrong:
        parser.error(f"{wrong} --message-id value(s) not a message id: a UUID, as inspect --list shows it")
    return Selection(
        frozenset(args.reason),
        frozenset(args.types),
        older,
        newer,
        keys=keys,
        message_ids=frozenset(message_ids),
    )


def _keys_of(args: argparse.Namespace, kind: QueueKind, parser: argparse.ArgumentParser) -> frozenset[str]:
    # A value that is not a key is not echoed: it may be whatever was pasted, an address included.
    if kind is QueueKind.EMAIL:
        if args.event_ids:
            parser.error("--event-id selects notification letters: add --queue notifications")
        wrong = sum(not is_dedupe_key(key) for key in args.dedupe_keys)
        if wrong:
            parser.error(
                f"{wrong} --dedupe-key value(s) not a dedupe key: booking_id#email_type#revision, "
                "as inspect --list shows it"
            )
        return frozenset(args.dedupe_keys)
    if args.dedupe_keys:
        parser.error("--dedupe-key selects email letters; a notification letter has an --event-id")
    event_ids = [event_id.lower() for event_id in args.event_ids]
    wrong = sum(not is_uuid(event_id) for event_id in event_ids)
    if wrong:
        parser.error(f"{wrong} --event-id value(s) not an event id: a UUID, as inspect --list shows it")
    return frozenset(event_ids)


def locate(args: argparse.Namespace, kind: QueueKind) -> SqsDeadLetterQueue:
    if args.aws:
        return locate_in_aws(
            kind,
            stack_name=args.stack,
            queue_url=args.queue_url,
            dlq_url=args.dlq_url,
            wait_seconds=args.wait_seconds,
        )
    return locate_local(local_stack_file(ROOT), kind, wait_seconds=args.wait_seconds)


class Tool:
    """The three commands over one DLQ; each returns the exit status."""

    def __init__(
        self, dlq: SqsDeadLetterQueue, selection: Selection, args: argparse.Namespace, now: datetime
    ) -> None:
        self.dlq = dlq
        self.selection = selection
        self.args = args
        self.now = now
        self.kind = dlq.kind
        self.progress = Progress()
        self.retention: timedelta | None = None

    def inspect(self) -> int:
        dlq_counts, source_counts = self.dlq.counts(), self.dlq.counts(self.dlq.source_url)
        print(f"{self.kind} DLQ      {_counts(dlq_counts)}")
        print(f"{self.kind} queue    {_counts(source_counts)}")
        print(f"as of {iso(self.now.replace(microsecond=0))}; {self._describe()}")
        looked = self._pass(None, dlq_counts, "looked at")
        print()
        rows = [
            [
                g.failure_reason,
                g.message_type,
                g.age.value,
                str(g.count),
                describe_duration(g.oldest),
                _duration(g.expires),
            ]
            for g in group(looked.selected, self.now, self.retention)
        ]
        headers = ["failure_reason", "type", "age", "count", "oldest", "expires"]
        print(_table(headers, rows) if rows else "no dead letters")
        if self.args.list and looked.selected:
            print()
            headers = ["message_id", "failure_reason", "type", self.kind.key_name, "age", "attempts"]
            print(_table([*headers, "expires"], [self._row(letter) for letter in looked.selected]))
        print()
        print(
            f"looked at {looked.examined}, {len(looked.selected)} selected; "
            f"nothing deleted, all visible again{self._arrivals(looked)}"
        )
        return self._ending(looked)

    def redrive(self) -> int:
        counts = self.dlq.counts()
        if self.args.dry_run:
            looked = self._pass(None, counts, "looked at")
            to_move = [letter for letter in looked.selected if not self._withheld(letter)]
            held = [letter for letter in looked.selected if self._withheld(letter)]
            for letter in to_move:
                print(f"would move {self._line(letter)}")
            for letter in held:
                print(f"would not move {self._line(letter)} (permanent: needs --force)")
            print(
                f"dry run: would move {len(to_move)} of {looked.examined} looked at"
                f"{self._withheld_note(held)}{self._arrivals(looked)}; nothing moved"
            )
            return self._ending(looked)
        action = Redrive(self.kind, self.dlq, self.dlq.source(), RateLimiter(self.args.rate))
        moved_pass = self._pass(
            action, counts, "moved", lambda d: self._say(f"moved {self._line(d.letter)} -> {d.copy_id}")
        )
        moved = [done.letter for done in moved_pass.done]
        print(
            f"moved {len(moved)} of {len(moved_pass.selected)} selected ({self._describe()}), "
            f"{moved_pass.examined} looked at{_by_reason(moved)}{self._arrivals(moved_pass)}"
        )
        if moved_pass.withheld:
            print(self._refusal(moved_pass.withheld))
        status = self._ending(moved_pass, moving=True)
        return EXIT_REFUSED if status == EXIT_OK and moved_pass.withheld else status

    def discard(self) -> int:
        counts = self.dlq.counts()
        if not self.args.yes:
            looked = self._pass(None, counts, "looked at")
            for letter in looked.selected:
                print(f"would delete {self._line(letter)}")
            print(
                f"refused: nothing deleted; add --yes to delete the {len(looked.selected)} selected "
                f"({self._describe()}){_by_reason(looked.selected)}{self._arrivals(looked)}"
            )
            return self._ending(looked) if looked.stopped or looked.gave_up else EXIT_REFUSED
        deleted = self._pass(
            Discard(self.dlq), counts, "deleted", lambda d: self._say(f"deleted {self._line(d.letter)}")
        )
        print(
            f"deleted {len(deleted.done)} of {deleted.examined} looked at "
            f"({self._describe()}){_by_reason([d.letter for d in deleted.done])}{self._arrivals(deleted)}"
        )
        return self._ending(deleted)

    # -- helpers ---------------------------------------------------------------------------------

    def _pass(
        self,
        act: Action | None,
        counts: QueueCounts,
        verb: str,
        on_done: Callable[[Done], None] | None = None,
    ) -> Pass:
        """One pass over the letters the DLQ held when ``counts`` were read (SQS's time then)."""
        self.retention = counts.retention
        result = sweep(
            self.dlq,
            self.selection,
            self.now,
            act,
            limit=self.args.limit,
            began_at=counts.as_of,
            present=counts.present,
            withhold=self._withheld if act is not None else None,
            on_progress=lambda p: self.progress.show(
                verb, len(p.done) if act else p.examined, counts.visible, approximate=True
            ),
            on_done=on_done,
        )
        self.progress.clear()
        return result

    def _withheld(self, letter: DeadLetter) -> bool:
        """Whether a redrive leaves ``letter`` for want of --force."""
        return self.args.command == "redrive" and not self.args.force and needs_force(self.kind, letter)

    def _say(self, line: str) -> None:
        """A line about one letter, as it happens (before the progress bar is drawn again)."""
        self.progress.clear()
        print(line, flush=True)

    def _describe(self) -> str:
        return self.selection.describe(self.kind.key_name)

    def _line(self, letter: DeadLetter) -> str:
        return (
            f"{letter.message_id} {letter.failure_reason} {letter.message_type} "
            f"{self.kind.key_name} {letter.key} age {describe_duration(letter.age(self.now))} "
            f"attempts {letter.attempts}"
        )

    def _row(self, letter: DeadLetter) -> list[str]:
        expires = letter.expires_in(self.now, self.retention) if self.retention is not None else None
        return [
            letter.message_id,
            letter.failure_reason,
            letter.message_type,
            letter.key,
            describe_duration(letter.age(self.now)),
            letter.attempts,
            _duration(expires),
        ]

    def _refusal(self, withheld: list[DeadLetter]) -> str:
        return (
            f"refused: {len(withheld)} selected not moved{_by_reason(withheld)}: a permanent reason, "
            "which a redrive meets again unless its cause was fixed; fix the cause, then add --force "
            "(with --dedupe-key or --message-id for single letters)"
        )

    def _withheld_note(self, withheld: list[DeadLetter]) -> str:
        if not withheld:
            return ""
        return f"; {len(withheld)} with a permanent reason would need --force{_by_reason(withheld)}"

    @staticmethod
    def _arrivals(result: Pass) -> str:
        """What the pass left because it was not in the DLQ when the pass began."""
        notes = []
        if result.returned:
            notes.append(
                f"; left {result.returned} carrying the message of one this pass moved "
                "(dead-lettered again, or a copy of it)"
            )
        if result.late:
            notes.append(
                f"; left {result.late} that reached the DLQ during the pass (a later pass takes them)"
            )
        if result.gave_up:
            notes.append("; stopped looking: letters kept reaching the DLQ faster than the pass could look")
        return "".join(notes)

    def _ending(self, result: Pass, *, moving: bool = False) -> int:
        if result.release_failed:
            print(
                "warning: some letters stay hidden until their visibility timeout runs out "
                f"({result.release_failed})",
                file=sys.stderr,
            )
        stopped = result.stopped
        if stopped is None:
            return EXIT_FAILED if result.gave_up else EXIT_OK
        where = f" at {stopped.letter.message_id}" if stopped.letter else ""
        print(f"stopped{where}: {stopped.code}", file=sys.stderr)
        if stopped.copy_id is not None:
            print(
                f"  its copy {stopped.copy_id} is on the {self.kind} queue and it is still in the DLQ: "
                "a re-run moves it again, and it is delivered once (dedupe key)",
                file=sys.stderr,
            )
        elif moving and stopped.code == INTERRUPTED:
            print(
                "  a letter being moved at that moment may be on both queues: "
                "a re-run moves it again, and it is delivered once (dedupe key)",
                file=sys.stderr,
            )
        return EXIT_FAILED


def _counts(counts: QueueCounts) -> str:
    return f"visible {counts.visible}, in flight {counts.in_flight}, delayed {counts.delayed}"


def _by_reason(letters: Iterable[DeadLetter]) -> str:
    counts = Counter(letter.failure_reason for letter in letters)
    return "; by reason: " + ", ".join(f"{r} {n}" for r, n in sorted(counts.items())) if counts else ""


def _duration(span: timedelta | None) -> str:
    return "-" if span is None else describe_duration(span)


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=False)]
    numeric = {"count", "attempts"}
    lines = []
    for row in [headers, *rows]:
        cells = [
            cell.rjust(width) if header in numeric else cell.ljust(width)
            for cell, width, header in zip(row, widths, headers, strict=True)
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0 or math.isinf(value):
        raise argparse.ArgumentTypeError("must be a positive number")
    return value


if __name__ == "__main__":
    raise SystemExit(main())
