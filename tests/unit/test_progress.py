"""The operator scripts' progress line (``operations.console.Progress``)."""

from __future__ import annotations

import io

from operations.console import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_progress_line_counts_or_fills_a_bar_on_a_terminal_only() -> None:
    terminal, pipe = Terminal(), io.StringIO()
    for stream in (terminal, pipe):
        progress = Progress(stream)
        progress.show("items examined:", 12)
        progress.show("moved", 10, 40, approximate=True)
        progress.show("", 1, 4)
        progress.show("moved", 50, 40, approximate=True)  # SQS's count was low: the bar stays full
        progress.clear()
        progress.clear()  # nothing drawn since: nothing written
    assert terminal.getvalue().split("\r\033[K") == [
        "",
        "items examined: 12",
        "moved [#######.......................] 10/~40",
        "[#######.......................] 1/4",
        "moved [##############################] 50/~40",
        "",
    ]
    assert pipe.getvalue() == ""
