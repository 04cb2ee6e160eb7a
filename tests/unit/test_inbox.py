"""The inbox page's server (``devstack/inbox.py``) on its own, without a stack."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from devstack.inbox import Inbox, InboxSources


def _read_one_answer(connection: socket.socket) -> bytes:
    """Read an HTTP/1.1 answer whose body has a Content-Length, leaving the connection open."""
    received = b""
    while b"\r\n\r\n" not in received:
        received += connection.recv(65536)
    head, body = received.split(b"\r\n\r\n", 1)
    headers = dict(line.split(b":", 1) for line in head.split(b"\r\n")[1:])
    length = int(next(value for name, value in headers.items() if name.lower() == b"content-length"))
    while len(body) < length:
        body += connection.recv(65536)
    return head


def test_stopping_the_inbox_closes_a_browsers_idle_keep_alive_connection(tmp_path: Path) -> None:
    # Given the inbox, and a connection that got a page and stays open (as a browser keeps it)
    sources = InboxSources(maildir=tmp_path / "maildir", webhooks_file=tmp_path / "webhooks.jsonl")
    inbox = Inbox(sources).start()
    try:
        with socket.create_connection((inbox.host, inbox.port), timeout=5) as connection:
            connection.sendall(f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{inbox.port}\r\n\r\n".encode())
            assert _read_one_answer(connection).startswith(b"HTTP/1.1 200")

            # When the inbox stops
            started = time.monotonic()
            inbox.stop()

            # Then it does so at once, and the idle connection is closed rather than left to its thread
            assert time.monotonic() - started < 3
            assert connection.recv(1) == b""
    finally:
        inbox.stop()
