"""Import holds exported from the booking app, one JSON object a line.

    .venv/bin/python scripts/import_holds.py holds.jsonl                  # the local stack (make run)
    .venv/bin/python scripts/import_holds.py holds.jsonl --aws            # BookingDurability-dev's table
    .venv/bin/python scripts/import_holds.py holds.jsonl --aws --stack BookingDurability-prod
    .venv/bin/python scripts/import_holds.py holds.jsonl --aws --table NAME

Each line is a hold with the fields the API answers for one (``hold_id, venue_id, party_size, starts_at,
ends_at, expires_at, table_ids``; ``policy_hash``, ``policy_version`` and ``selection_snapshot``
may be missing; ``status``, when given, is ``held``). It is stored as a held hold owning its tables
over ``[starts_at, ends_at + buffer)``, the buffer of the venue's current policy, in one
transaction with its ownership records. A hold already stored as given is skipped; a line that
is invalid, names an unknown venue or table, whose tables cannot seat its party (under the version
it names, else the current one: ``party_does_not_fit``), has expired, reuses a hold id for another
hold, or wants a table another live owner holds meanwhile is refused. Re-running a file is safe.

Prints one line per refused line (its number, a reason code, the hold id when valid: never the
line itself) and a summary. Exit status: 0 when every line was imported or skipped, 1 when any was
refused, 2 when nothing was tried: the file cannot be read as UTF-8, or the table cannot be found
(no ``stack.json``, the local stack not answering, the AWS lookup failed), said in one line on
standard error and no summary; 3 when the table stopped answering part-way, the summary saying
what was done.

Locally the table is found through ``$LOCAL_DIR/stack.json`` (``LOCAL_DIR`` defaults to ``.local``);
with ``--aws``, credentials and region come from the usual AWS environment (``AWS_PROFILE``,
``AWS_REGION``) and the table from ``--table`` or the stack's ``ReservationsTableName`` output.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from booking_durability.errors import InfrastructureError
from booking_durability.times import utc_now
from operations.console import add_target_arguments, local_stack_file
from operations.hold_migration import HoldMigrationTable, locate
from operations.migration import LineOutcome, LineResult, import_lines
from operations.stack_lookup import StackNotFound

ROOT = Path(__file__).resolve().parent.parent

#: Nothing was tried (unreadable input, no table to import into); stopped part-way.
EXIT_OK, EXIT_REFUSED, EXIT_NOT_STARTED, EXIT_STOPPED = 0, 1, 2, 3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("file", type=Path, help="the exported holds, one JSON object a line (UTF-8)")
    add_target_arguments(parser, "table", table=True)
    args = parser.parse_args(argv)

    try:
        # Read whole before anything is written: an unreadable file imports nothing.
        text = args.file.read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"cannot read {args.file}: {_unreadable(exc)}", file=sys.stderr)
        return EXIT_NOT_STARTED
    try:
        store = table_of(args)
    except StackNotFound as exc:
        # Before any line: a summary of nothing imported would only bury the reason.
        print(f"nothing imported: {exc}", file=sys.stderr)
        return EXIT_NOT_STARTED
    counts: Counter[LineOutcome] = Counter()
    try:
        # Lines end at "\n" only: a JSON string may hold a raw U+2028, which splitlines() cuts at.
        for result in import_lines(store, text.split("\n"), utc_now):
            counts[result.outcome] += 1
            if result.outcome is LineOutcome.REFUSED:
                print(describe_refusal(result))
    except InfrastructureError as exc:
        print(f"stopped part-way: {exc}; running the file again is safe", file=sys.stderr)
        _print_summary(counts)
        return EXIT_STOPPED
    _print_summary(counts)
    return EXIT_REFUSED if counts[LineOutcome.REFUSED] else EXIT_OK


def table_of(args: argparse.Namespace) -> HoldMigrationTable:
    return locate(in_aws=args.aws, table=args.table, stack_name=args.stack, stack_file=local_stack_file(ROOT))


def describe_refusal(result: LineResult) -> str:
    refused = result.refused
    if refused is None:
        raise ValueError(f"line {result.line} was not refused")
    parts = [f"line {result.line}: refused {refused.reason.value}"]
    if refused.field:
        parts.append(f"field {refused.field}")
    if result.hold_id:
        parts.append(f"hold {result.hold_id}")
    return " ".join(parts)


def _print_summary(counts: Counter[LineOutcome]) -> None:
    print(", ".join(f"{outcome.value} {counts[outcome]}" for outcome in LineOutcome))


def _unreadable(exc: Exception) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 (at byte {exc.start})"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return type(exc).__name__


if __name__ == "__main__":
    raise SystemExit(main())
