"""What the operator scripts (``dlq``, ``import_holds``, ``backfill_hold_metadata``) share on the
command line: which stack they work on.

Locally, the stack is the one ``make run`` describes in ``$LOCAL_DIR/stack.json`` (``LOCAL_DIR``
defaults to ``.local``, relative to the repository); with ``--aws``, the deployed stack
``--stack`` (``BookingDurability-dev`` by default, the dev stage's stack name).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any, Protocol

DEFAULT_STACK = "BookingDurability-dev"


class Arguments(Protocol):
    """A parser or one of its argument groups."""

    def add_argument(self, *names: str, **options: Any) -> argparse.Action: ...


def add_target_arguments(parser: Arguments, what: str, *, table: bool = False) -> None:
    """``--aws`` and ``--stack`` (and ``--table`` with ``table``) on ``parser``; ``what`` names
    what the script works on in the deployed stack."""
    parser.add_argument(
        "--aws", action="store_true", help=f"the deployed stack's {what} (default: the local stack)"
    )
    if table:
        parser.add_argument("--table", help="the reservations table's name (default: found from the stack)")
    parser.add_argument(
        "--stack", default=DEFAULT_STACK, help=f"with --aws: the stack (default {DEFAULT_STACK})"
    )


def local_stack_file(root: Path) -> Path:
    """``$LOCAL_DIR/stack.json``, ``LOCAL_DIR`` relative to ``root`` (an absolute one stays)."""
    return root / os.environ.get("LOCAL_DIR", ".local") / "stack.json"
