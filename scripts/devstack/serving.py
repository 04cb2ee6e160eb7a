"""What every local server run as a script does: log one line per event, serve until signalled."""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import sys
import threading
from http.server import ThreadingHTTPServer
from typing import Any, Protocol


class Stoppable(Protocol):
    def stop(self) -> None: ...


#: Every local process's own log line: the local stack's supervisor puts the component's name in
#: front (``mail_sink | INFO listening on ...``), so the line carries neither name nor time.
LINE_FORMAT = "%(levelname)s %(message)s"


def configure_logging() -> None:
    """One line per event on stdout (the local stack relays it, prefixed with the component)."""
    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format=LINE_FORMAT)


def log_to_stderr(logger: logging.Logger) -> None:
    """``logger``'s lines (INFO and up) on stderr, and only there: the root logger stays the
    handler's, as in Lambda, for a process that runs one (a worker, an execution environment)."""
    stderr = logging.StreamHandler(sys.stderr)
    stderr.setFormatter(logging.Formatter(LINE_FORMAT))
    logger.addHandler(stderr)
    logger.setLevel(logging.INFO)
    logger.propagate = False


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


class ConnectionTrackingServer(ThreadingHTTPServer):
    """A threading HTTP server that can drop its open connections when it stops: idle keep-alive
    connections would otherwise hold their threads after ``shutdown()``. A client that went away
    (or a connection dropped at stop) is not worth a traceback."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: Any) -> None:
        super().__init__(address, handler)
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def serve_in_background(self, name: str) -> None:
        # A short poll keeps stop() quick (serve_forever checks for shutdown between polls).
        self._thread = threading.Thread(target=self.serve_forever, args=(0.05,), name=name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving, drop idle keep-alive connections, close the socket, wait for the thread."""
        self.shutdown()
        self.drop_connections()
        self.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._connections_lock:
                self._connections.discard(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)

    def drop_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
