"""The inbox page's server (``devstack/inbox.py``) on its own, without a stack."""

from __future__ import annotations

import os
import socket
import time
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

from devstack.inbox import Inbox, InboxSources, read_maildir


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


def _store(maildir: Path, name: str, subject: str, stored_at: float) -> None:
    message = EmailMessage()
    message["Subject"] = subject
    message["X-Dedupe-Key"] = "bk_1#booking_confirmed#1"
    message.set_content("Hola")
    message["Content-Language"] = "es"  # after the content, which would clear it
    path = maildir / name
    path.write_bytes(message.as_bytes())
    os.utime(path, (stored_at, stored_at))


def test_the_maildir_is_listed_newest_first_by_when_each_message_was_stored(tmp_path: Path) -> None:
    # Given a Maildir with a new message and a read one (in cur/, its flags after the colon)
    for folder in ("new", "cur", "tmp"):
        (tmp_path / folder).mkdir()
    _store(tmp_path, "new/1000.A.host", "older", 1_000_000_000)
    _store(tmp_path, "cur/2000.B.host:2,S", "newer", 1_000_000_060)

    # When the inbox reads it
    emails = read_maildir(tmp_path)

    # Then both are there under their Maildir keys, newest first, at the time each file was stored
    assert [(e.key, e.subject) for e in emails] == [("2000.B.host", "newer"), ("1000.A.host", "older")]
    assert emails[0].delivered_at == datetime.fromtimestamp(1_000_000_060, UTC)
    assert (emails[0].email_type, emails[0].locale, emails[0].dedupe_key) == (
        "booking_confirmed",
        "es",
        "bk_1#booking_confirmed#1",
    )


def test_an_emails_page_is_found_by_its_key_and_an_unknown_key_is_missing(tmp_path: Path) -> None:
    maildir = tmp_path / "maildir"
    for folder in ("new", "cur", "tmp"):
        (maildir / folder).mkdir(parents=True)
    _store(maildir, "cur/2000.B.host:2,S", "Hola", 1_000_000_000)
    with Inbox(InboxSources(maildir=maildir, webhooks_file=tmp_path / "webhooks.jsonl")) as inbox:
        for key, status in (("2000.B.host", b"200"), ("..", b"404"), ("3000.C.host", b"404")):
            with socket.create_connection((inbox.host, inbox.port), timeout=5) as connection:
                request = f"GET /messages/{key}/source HTTP/1.1\r\nHost: 127.0.0.1:{inbox.port}\r\n\r\n"
                connection.sendall(request.encode())
                assert _read_one_answer(connection).startswith(b"HTTP/1.1 " + status)
