"""What the operator scripts (``dlq``, ``import_holds``, ``backfill_hold_metadata``) share on the
command line: which stack they work on, and a progress line on the terminal.

Locally, the stack is the one ``make run`` describes in ``$LOCAL_DIR/stack.json`` (``LOCAL_DIR``
defaults to ``.local``, relative to the repository); with ``--aws``, the deployed stack
``--stack`` (``BookingDurability-dev`` by default, the dev stage's stack name).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, Protocol, TextIO

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


class Progress:
    """One line on ``stream`` (standard error by default), redrawn in place as work goes on, and
    only when ``stream`` is a terminal: piped or captured output never carries it."""

    WIDTH = 30

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self.drawn = False

    def show(self, label: str, done: int, total: int | None = None, *, approximate: bool = False) -> None:
        """``label`` and ``done``, as a bar of ``done`` out of ``total`` when there is a total
        (``~total`` when it is ``approximate``, as SQS's counts are)."""
        if total:
            filled = min(self.WIDTH, self.WIDTH * done // total)
            about = "~" if approximate else ""
            count = f"[{'#' * filled}{'.' * (self.WIDTH - filled)}] {done}/{about}{total}"
        else:
            count = str(done)
        self._draw(f"{label} {count}" if label else count)

    def clear(self) -> None:
        """Wipe the line (before other output, and at the end)."""
        if self.drawn:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self.drawn = False

    def _draw(self, line: str) -> None:
        if self.enabled:
            self.stream.write(f"\r\033[K{line}")
            self.stream.flush()
            self.drawn = True
