"""The local SMTP sink as any SMTP client sees it (docs/reference/local-stack.md#email-sink): Maildir,
Delivered-To, 24-hour deduplication on Message-ID, fault injection after DATA, a mail log without addresses,
and a clean shutdown when run as a script.
"""

from __future__ import annotations

import logging
import re
import signal
import smtplib
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest

from devstack.mail_sink import MailSink
from tests.integration.provider_fixtures import (
    GUEST_DOMAIN,
    GUEST_LOCAL_PART,
    guest_address,
    running_mail_sink,
)

REPO = Path(__file__).resolve().parents[2]
MESSAGE_ID = "<0f1e2d3c@booking.local>"


@dataclass
class Clock:
    now: datetime = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def raw_message(message_id: str | None = MESSAGE_ID, to: str = "") -> bytes:
    message = EmailMessage()
    message["From"] = "bookings@booking.local"
    message["To"] = to or guest_address()
    message["Subject"] = "Your booking"
    if message_id:
        message["Message-ID"] = message_id
    message["X-Dedupe-Key"] = "bk-7#booking_confirmed#0"
    message.set_content("See you soon.")
    return message.as_bytes()


def send(port: int, recipients: list[str], content: bytes) -> tuple[int, bytes]:
    """One SMTP transaction on loopback; returns the reply to DATA (RCPT must have been accepted)."""
    with smtplib.SMTP("127.0.0.1", port, timeout=5) as client:
        client.ehlo("test.local")
        assert client.mail("bookings@booking.local")[0] == 250
        for recipient in recipients:
            assert client.rcpt(recipient)[0] == 250  # faults come after DATA, never at RCPT
        return client.data(content)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sink(tmp_path: Path, clock: Clock) -> Iterator[MailSink]:
    with running_mail_sink(tmp_path, clock=clock) as running:
        yield running


def test_message_is_stored_in_a_maildir_with_delivered_to_for_each_recipient(sink: MailSink) -> None:
    # Given a message for two recipients
    recipients = [guest_address(), "host@restaurant.test"]

    # When it is sent
    code, _ = send(sink.port, recipients, raw_message())

    # Then each recipient has a copy naming them in Delivered-To, in a proper Maildir
    assert code == 250
    assert sorted(message["Delivered-To"] for message in sink.messages()) == sorted(recipients)
    assert all(message["Message-ID"] == MESSAGE_ID for message in sink.messages())
    assert {"tmp", "new", "cur"} <= {entry.name for entry in sink.maildir_path.iterdir()}
    assert len(list((sink.maildir_path / "new").iterdir())) == 2


def test_repeat_within_24_hours_is_accepted_but_not_stored_and_after_is_stored_again(
    sink: MailSink, clock: Clock
) -> None:
    # Given a message already stored
    send(sink.port, [guest_address()], raw_message())

    # When the same Message-ID comes again just within 24 h, and again just after
    clock.now += timedelta(hours=23, minutes=59)
    within = send(sink.port, [guest_address()], raw_message())
    clock.now += timedelta(hours=24, minutes=1)
    after = send(sink.port, [guest_address()], raw_message())

    # Then both are accepted, only the late one is stored, and the log says so
    assert within[0] == after[0] == 250
    assert len(sink.messages()) == 2
    assert [entry["stored"] for entry in sink.mail_log()] == [True, False, True]


def test_message_without_a_message_id_is_stored_every_time(sink: MailSink) -> None:
    # Given a client that sets no Message-ID
    # When it sends the same message twice
    send(sink.port, [guest_address()], raw_message(message_id=None))
    send(sink.port, [guest_address()], raw_message(message_id=None))

    # Then there is nothing to deduplicate on: both are stored and logged without an id
    assert len(sink.messages()) == 2
    assert [entry["message_id"] for entry in sink.mail_log()] == [None, None]


@pytest.mark.parametrize(
    ("tag", "codes"),
    [
        ("transient2", [451, 451, 250, 250]),
        ("throttle1", [421, 250, 250, 250]),
        ("permanent", [550, 550, 550, 550]),
        ("", [250, 250, 250, 250]),
    ],
)
def test_fault_tags_answer_after_data_counted_per_message_id(
    sink: MailSink, tag: str, codes: list[int]
) -> None:
    # Given a recipient carrying a fault tag
    recipient = guest_address(tag)

    # When the same message is sent four times
    replies = [send(sink.port, [recipient], raw_message())[0] for _ in codes]

    # Then the first attempts get the injected code, and only the first success is stored
    assert replies == codes
    assert [entry["code"] for entry in sink.mail_log()] == codes
    assert len(sink.messages()) == (1 if 250 in codes else 0)


def test_fault_counts_are_kept_per_message_id(sink: MailSink) -> None:
    # Given two different messages to the same tagged recipient
    recipient = guest_address("transient1")

    # When each is sent twice
    first = [send(sink.port, [recipient], raw_message("<a@booking.local>"))[0] for _ in range(2)]
    second = [send(sink.port, [recipient], raw_message("<b@booking.local>"))[0] for _ in range(2)]

    # Then each message gets its own first failure
    assert first == second == [451, 250]


def test_mail_log_and_log_lines_never_name_the_guest(
    sink: MailSink, caplog: pytest.LogCaptureFixture
) -> None:
    # Given deliveries, repeats and refusals
    caplog.set_level(logging.INFO, logger="devstack.mail_sink")
    for tag in ("transient1", "transient1", "permanent"):
        send(sink.port, [guest_address(tag)], raw_message())

    # Then each transaction has one mail log line and one log line, with ids only
    entries = sink.mail_log()
    assert len(entries) == 3
    for entry in entries:
        assert set(entry) == {"received_at", "message_id", "dedupe_key", "code", "stored"}
        assert entry["dedupe_key"] == "bk-7#booking_confirmed#0"
        assert entry["received_at"].endswith("Z")
    lines = [record.getMessage() for record in caplog.records if record.name == "devstack.mail_sink"]
    assert len(lines) == 3
    everything = sink.mail_log_path.read_text(encoding="utf-8") + "\n".join(lines)
    assert GUEST_LOCAL_PART not in everything
    assert GUEST_DOMAIN not in everything


def test_a_restarted_sink_remembers_attempts_and_deliveries(tmp_path: Path) -> None:
    # Given a sink that refused a tagged message once, then died
    recipient = guest_address("transient2")
    with running_mail_sink(tmp_path) as sink:
        assert send(sink.port, [recipient], raw_message())[0] == 451

    # When a new sink on the same files receives the retries and a repeat
    with running_mail_sink(tmp_path) as sink:
        retries = [send(sink.port, [recipient], raw_message())[0] for _ in range(2)]
    with running_mail_sink(tmp_path) as sink:
        repeat = send(sink.port, [recipient], raw_message())[0]
        stored = len(sink.messages())

    # Then the count went on where it stopped, and the delivered message was not stored twice
    assert retries == [451, 250]
    assert repeat == 250
    assert stored == 1


def test_script_serves_until_sigterm_and_exits_cleanly(tmp_path: Path) -> None:
    # Given the sink started as make run starts it, on a free port, in a fresh local folder
    local = tmp_path / ".local"
    process = subprocess.Popen(
        [
            sys.executable,
            str(REPO / "scripts/devstack/mail_sink.py"),
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--maildir",
            str(local / "maildir"),
            "--mail-log",
            str(local / "mail-log.jsonl"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        port = int(re.search(r"listening on 127\.0\.0\.1:(\d+)", banner).group(1))  # type: ignore[union-attr]

        # When a message is sent and the process gets SIGTERM
        assert send(port, [guest_address()], raw_message())[0] == 250
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    # Then it stopped cleanly, after one transaction line that names no one
    assert process.returncode == 0
    transaction_lines = [line for line in output.splitlines() if "smtp transaction" in line]
    assert len(transaction_lines) == 1
    assert "code=250" in transaction_lines[0]
    assert GUEST_LOCAL_PART not in output
    assert len(list((local / "maildir" / "new").iterdir())) == 1
    assert len((local / "mail-log.jsonl").read_text().splitlines()) == 1
