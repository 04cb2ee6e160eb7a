"""Look at, redrive or discard the dead letters of the email or notifications DLQ.

    .venv/bin/python scripts/dlq.py inspect                                # the local email DLQ
    .venv/bin/python scripts/dlq.py inspect --queue notifications --list
    .venv/bin/python scripts/dlq.py redrive --reason transient_exhausted --dry-run
    .venv/bin/python scripts/dlq.py redrive --reason provider_rejected --type booking_confirmed \\
        --newer-than 2h --rate 5
    .venv/bin/python scripts/dlq.py redrive                                # everything
    .venv/bin/python scripts/dlq.py discard --reason schema_invalid --older-than 1d      # refuses
    .venv/bin/python scripts/dlq.py discard --reason schema_invalid --older-than 1d --yes
    .venv/bin/python scripts/dlq.py inspect --aws                          # BookingDurability-dev
    .venv/bin/python scripts/dlq.py inspect --aws --stack BookingDurability-prod
    .venv/bin/python scripts/dlq.py inspect --aws --queue-url URL --dlq-url URL

inspect   the queues' counts and the dead letters grouped by failure_reason, type and age
          (<1h, <1d, <7d, >=7d); --list adds one line per letter.
redrive   moves the selected letters back to the queue they came from (email DLQ -> email queue,
          notifications DLQ -> notifications queue), --rate per second; --dry-run moves nothing.
discard   deletes the selected letters, only with --yes (and --all when nothing is selected).

Selection (every command): --reason and --type (repeatable), --older-than / --newer-than
(30s, 15m, 2h, 7d, 1w, 1h30m). A letter without failure_reason shows "none": SQS moved it after
the queue's maxReceiveCount receives (the function crashed or timed out on it every time).

Nothing personal is ever printed: message ids, ages and attribute values only. An email body
holds the guest's address and name and is never parsed; a drift event's body (ids and hashes
only) is read for its "type".

How letters are looked at: SQS cannot read a queue without receiving it, so each letter is
received hidden for 30 s (extended while the pass lasts) and made visible again when the pass
ends. Nothing is deleted but by redrive (after its copy was sent) or discard --yes. A pass killed
outright only leaves letters hidden until their 30 s run out; SQS then shows them again. While
hidden they are not counted as visible, so the DLQ alarm may blink during a long look.

How letters move: when everything is to move (no selection, no --dry-run, --limit, --loop), SQS's
StartMessageMoveTask moves them server-side at --rate, attributes unchanged; where it is not
available (moto, or no sqs:StartMessageMoveTask permission) and for any selection, each letter is
sent to the source queue, then deleted from the DLQ. Send first: an interruption in between
leaves the letter on both queues, never lost, and a re-run moves it again; the consumer then
delivers it once, as the deliveries ledger's dedupe key is claimed before any send (a drift
event's webhook-id or email dedupe key is the event's). A copy keeps email_type, schema and
attempts and drops failure_reason; the consumers read only attempts (passed on if the body
turns out unparseable) and count delivery attempts in the ledger.

Locally the queues are found through $LOCAL_DIR/stack.json (LOCAL_DIR defaults to .local); with
--aws, credentials and region come from the usual AWS environment (AWS_PROFILE, AWS_REGION),
the queues from --queue-url and --dlq-url, or else the stack's outputs (EmailQueueUrl,
EmailDlqUrl, NotificationsQueueUrl, NotificationsDlqUrl).

Exit status: 0 done; 1 failed or stopped part-way (what was done is printed); 2 usage error, or
discard refused without --yes.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

from booking_durability.adapters.dead_letters import (
    QueueCounts,
    SqsDeadLetterQueue,
    locate_in_aws,
    locate_local,
)
from booking_durability.adapters.stack_lookup import StackNotFound
from booking_durability.errors import InfrastructureError
from booking_durability.operations.console import Progress, add_target_arguments, local_stack_file
from booking_durability.operations.dead_letters import DeadLetter, QueueKind
from booking_durability.operations.redrive import (
    Discard,
    MoveState,
    MoveStatus,
    MoveTaskUnsupported,
    RateLimiter,
    Redrive,
    follow_move_task,
    moves_everything,
)
from booking_durability.operations.selection import (
    Selection,
    describe_duration,
    group,
    parse_duration,
)
from booking_durability.operations.sweep import INTERRUPTED, Action, Pass, sweep
from booking_durability.times import iso, utc_now

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RATE = 10.0

EXIT_OK, EXIT_FAILED, EXIT_REFUSED = 0, 1, 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    kind = QueueKind(args.queue)
    selection = selection_of(args, kind, parser)
    if args.command == "discard" and selection.everything and not args.all:
        parser.error("discard needs a selection (--reason, --type, --older-than, --newer-than) or --all")
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
    chosen.add_argument("--reason", action="append", default=[], help="failure_reason (repeatable)")
    chosen.add_argument(
        "--type", action="append", default=[], dest="types", metavar="TYPE", help="type (repeatable)"
    )
    chosen.add_argument("--older-than", help="letters at least this old (e.g. 2h, 7d)")
    chosen.add_argument("--newer-than", help="letters younger than this (e.g. 30m)")
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
        "--loop", action="store_true",
        help="move one by one (ids printed) even when everything is selected",
    )  # fmt: skip
    discard = commands.add_parser("discard", parents=[common], help="delete letters (with --yes)")
    discard.add_argument("--yes", action="store_true", help="really delete them")
    discard.add_argument("--all", action="store_true", help="with no selection: every letter")
    return parser


def selection_of(args: argparse.Namespace, kind: QueueKind, parser: argparse.ArgumentParser) -> Selection:
    for given, known, what in ((args.reason, kind.reasons, "reason"), (args.types, kind.types, "type")):
        unknown = sorted(set(given) - set(known))
        if unknown:
            # The operator's own argument, echoed back: it is theirs, not a guest's.
            parser.error(f"unknown {what} {', '.join(unknown)} for the {kind} DLQ: one of {', '.join(known)}")
    try:
        older = parse_duration(args.older_than) if args.older_than else None
        newer = parse_duration(args.newer_than) if args.newer_than else None
    except ValueError as exc:
        parser.error(str(exc))
    return Selection(frozenset(args.reason), frozenset(args.types), older, newer)


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

    def inspect(self) -> int:
        dlq_counts, source_counts = self.dlq.counts(), self.dlq.counts(self.dlq.source_url)
        print(f"{self.kind} DLQ      {_counts(dlq_counts)}")
        print(f"{self.kind} queue    {_counts(source_counts)}")
        print(f"as of {iso(self.now.replace(microsecond=0))}; {self.selection.describe()}")
        looked = self._pass(None, dlq_counts.visible, "looked at")
        print()
        rows = [
            [g.failure_reason, g.message_type, g.age.value, str(g.count), describe_duration(g.oldest)]
            for g in group(looked.selected, self.now)
        ]
        print(
            _table(["failure_reason", "type", "age", "count", "oldest"], rows) if rows else "no dead letters"
        )
        if self.args.list and looked.selected:
            print()
            print(
                _table(
                    ["message_id", "failure_reason", "type", "age", "attempts"], self._rows(looked.selected)
                )
            )
        print()
        print(
            f"looked at {looked.examined}, {len(looked.selected)} selected; "
            "nothing deleted, all visible again"
        )
        return self._ending(looked)

    def redrive(self) -> int:
        if not self.args.loop and moves_everything(
            self.selection, dry_run=self.args.dry_run, limit=self.args.limit
        ):
            status = self._move_task()
            if status is not None:
                return status
        visible = self.dlq.counts().visible
        if self.args.dry_run:
            looked = self._pass(None, visible, "looked at")
            self._print_letters("would move", looked.selected)
            print(f"dry run: would move {len(looked.selected)} of {looked.examined} looked at; nothing moved")
            return self._ending(looked)
        action = Redrive(self.dlq, self.dlq.source(), RateLimiter(self.args.rate))
        moved_pass = self._pass(action, visible, "moved")
        for done in moved_pass.done:
            print(f"moved {self._line(done.letter)} -> {done.copy_id}")
        moved = [done.letter for done in moved_pass.done]
        print(
            f"moved {len(moved)} of {len(moved_pass.selected)} selected ({self.selection.describe()}), "
            f"{moved_pass.examined} looked at{_by_reason(moved)}"
        )
        return self._ending(moved_pass, moving=True)

    def discard(self) -> int:
        visible = self.dlq.counts().visible
        if not self.args.yes:
            looked = self._pass(None, visible, "looked at")
            self._print_letters("would delete", looked.selected)
            print(
                f"refused: nothing deleted; add --yes to delete the {len(looked.selected)} selected "
                f"({self.selection.describe()}){_by_reason(looked.selected)}"
            )
            return self._ending(looked) if looked.stopped else EXIT_REFUSED
        deleted = self._pass(Discard(self.dlq), visible, "deleted")
        for done in deleted.done:
            print(f"deleted {self._line(done.letter)}")
        print(
            f"deleted {len(deleted.done)} of {deleted.examined} looked at "
            f"({self.selection.describe()}){_by_reason([d.letter for d in deleted.done])}"
        )
        return self._ending(deleted)

    # -- helpers ---------------------------------------------------------------------------------

    def _move_task(self) -> int | None:
        """Everything, server-side; ``None`` when SQS's move task is not available here."""
        looked = self._pass(None, self.dlq.counts().visible, "looked at")
        if looked.stopped:
            return self._ending(looked)
        if not looked.selected:
            print("no dead letters to move")
            return EXIT_OK
        try:
            handle = self.dlq.start_move_task(math.ceil(self.args.rate))
        except MoveTaskUnsupported as exc:
            print(f"StartMessageMoveTask not available ({exc}): moving one by one", file=sys.stderr)
            return None
        print(f"moving {len(looked.selected)} found{_by_reason(looked.selected)} with SQS move task {handle}")
        progress = Progress()
        try:
            status = follow_move_task(
                self.dlq, on_progress=lambda s: progress.show("moved", s.moved, s.to_move, approximate=True)
            )
        except KeyboardInterrupt:
            progress.clear()
            print(f"stopped following: move task {handle} goes on in SQS", file=sys.stderr)
            return EXIT_FAILED
        progress.clear()
        print(_move_summary(status))
        return EXIT_OK if status.state is MoveState.COMPLETED else EXIT_FAILED

    def _pass(self, act: Action | None, visible: int, verb: str) -> Pass:
        progress = Progress()
        result = sweep(
            self.dlq,
            self.selection,
            self.now,
            act,
            limit=self.args.limit,
            on_progress=lambda p: progress.show(
                verb, len(p.done) if act else p.examined, visible, approximate=True
            ),
        )
        progress.clear()
        return result

    def _print_letters(self, verb: str, letters: list[DeadLetter]) -> None:
        for letter in letters:
            print(f"{verb} {self._line(letter)}")

    def _line(self, letter: DeadLetter) -> str:
        return (
            f"{letter.message_id} {letter.failure_reason} {letter.message_type} "
            f"age {describe_duration(letter.age(self.now))} attempts {letter.attempts}"
        )

    def _rows(self, letters: list[DeadLetter]) -> list[list[str]]:
        return [
            [
                letter.message_id,
                letter.failure_reason,
                letter.message_type,
                describe_duration(letter.age(self.now)),
                letter.attempts,
            ]
            for letter in letters
        ]

    def _ending(self, result: Pass, *, moving: bool = False) -> int:
        if result.release_failed:
            print(
                "warning: some letters stay hidden until their visibility timeout runs out "
                f"({result.release_failed})",
                file=sys.stderr,
            )
        stopped = result.stopped
        if stopped is None:
            return EXIT_OK
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


def _by_reason(letters: list[DeadLetter]) -> str:
    counts = Counter(letter.failure_reason for letter in letters)
    return "; by reason: " + ", ".join(f"{r} {n}" for r, n in sorted(counts.items())) if counts else ""


def _move_summary(status: MoveStatus) -> str:
    of = f" of ~{status.to_move}" if status.to_move is not None else ""
    failure = f" ({status.failure})" if status.failure else ""
    return f"move task {status.state.value.lower()}: moved {status.moved}{of}{failure}"


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
