"""Complete the metadata of active holds that lack it, or release them (docs/runbook.md,
"Hold metadata rejected spike").

    .venv/bin/python scripts/backfill_hold_metadata.py                      # dry run, local stack
    .venv/bin/python scripts/backfill_hold_metadata.py --apply              # write
    .venv/bin/python scripts/backfill_hold_metadata.py --apply --skip-underivable
    .venv/bin/python scripts/backfill_hold_metadata.py --aws [--stack NAME | --table NAME] [--apply]

Finds every active hold (``held``, not expired) that confirmation would refuse for missing
metadata, reading the table page by page. Where the venue version the hold was quoted under is
known (its ``policy_version``, else the version with its ``policy_hash``), it fills the policy
hash and version and the selection snapshot from the hold and that version (``zone`` null unless
the hold's snapshot gave one; ``quoted_at`` derived as ``expires_at`` - that version's
``hold_ttl_seconds``). A hold whose tables that version does not have or cannot seat its party
is never completed. Otherwise it releases the hold and frees its tables, or with
``--skip-underivable`` leaves it as it is.

A dry run (the default) prints what it would do and writes nothing. With ``--apply`` every write
is conditioned on the hold still being held with the very document read, so a hold confirmed or
changed meanwhile is reported as ``skipped: changed meanwhile``, never overwritten. Running it
again finds nothing left to do. Prints hold ids only. A progress bar is drawn on a terminal.

Exit status: 0 on success, 3 when the table cannot be reached.

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
from operations.console import Progress, add_target_arguments, local_stack_file
from operations.hold_migration import HoldMigrationTable, locate
from operations.migration import BackfillAction, StepResult, carry_out, plan_backfill
from operations.stack_lookup import StackNotFound

ROOT = Path(__file__).resolve().parent.parent
EXIT_OK, EXIT_UNREACHABLE = 0, 3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--apply", action="store_true", help="write (default: a dry run that writes nothing)")
    parser.add_argument(
        "--skip-underivable",
        action="store_true",
        help="leave holds that cannot be completed (default: release)",
    )
    parser.add_argument("--page-size", type=int, default=100, help="items a scan request examines")
    add_target_arguments(parser, "table", table=True)
    args = parser.parse_args(argv)
    if args.page_size < 1:
        parser.error("--page-size must be at least 1")

    progress = Progress(sys.stderr)
    try:
        return _run(args, progress)
    except (StackNotFound, InfrastructureError) as exc:
        progress.clear()
        print(f"stopped: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE


def _run(args: argparse.Namespace, progress: Progress) -> int:
    store = table_of(args)
    examined = 0

    def scanned(count: int) -> None:
        nonlocal examined
        examined += count
        progress.show("items examined:", examined)

    steps = plan_backfill(
        store, utc_now(), skip_underivable=args.skip_underivable, page_size=args.page_size, on_page=scanned
    )
    progress.clear()
    if not args.apply:
        for step in steps:
            print(f"{step.hold_id}: {step.describe()}")
        planned = Counter(step.action for step in steps)
        print(
            f"dry run: would fill {planned[BackfillAction.FILL]}, release {planned[BackfillAction.RELEASE]},"
            f" leave {planned[BackfillAction.LEAVE]}; nothing written (--apply writes)"
            if steps
            else "dry run: nothing to do"
        )
        return EXIT_OK

    results: Counter[StepResult] = Counter()
    for done, step in enumerate(steps, start=1):
        result = carry_out(store, step, utc_now)
        results[result] += 1
        progress.clear()
        print(f"{step.hold_id}: {step.describe()} -> {result.value}")
        progress.show("", done, len(steps))
    progress.clear()
    skipped = results[StepResult.CHANGED] + results[StepResult.CONTENDED]
    print(
        f"filled {results[StepResult.FILLED]}, released {results[StepResult.RELEASED]},"
        f" left {results[StepResult.LEFT]}, skipped {skipped}"
        if steps
        else "nothing to do"
    )
    return EXIT_OK


def table_of(args: argparse.Namespace) -> HoldMigrationTable:
    return locate(in_aws=args.aws, table=args.table, stack_name=args.stack, stack_file=local_stack_file(ROOT))


if __name__ == "__main__":
    raise SystemExit(main())
