"""What every local server run as a script does: log one line per event, serve until signalled."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from typing import Protocol


class Stoppable(Protocol):
    def stop(self) -> None: ...


def configure_logging(component: str) -> None:
    """One line per event on stdout, named after the component (the local stack relays it)."""
    logging.basicConfig(
        stream=sys.stdout, level=logging.INFO, format=f"%(asctime)s {component} %(levelname)s %(message)s"
    )


def serve_until_signalled(server: Stoppable, logger: logging.Logger, where: str) -> int:
    """Keep the started ``server`` up until SIGTERM or SIGINT, then stop it cleanly."""
    stopping = threading.Event()

    def _on_signal(_signum: int, _frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    logger.info("listening on %s", where)
    try:
        while not stopping.wait(1.0):
            pass
    finally:
        server.stop()
        logger.info("stopped")
    return 0
