"""The local SMTP sink of ``make run``: a Maildir, a mail log and fault injection, on loopback.

    python scripts/devstack/mail_sink.py --host 127.0.0.1 --port 1025 \\
        --maildir .local/maildir --mail-log .local/mail-log.jsonl

- Every stored copy gets ``Delivered-To: <envelope recipient>`` on top.
- Like a provider honouring idempotency keys, a ``Message-ID`` already stored within 24 h is
  answered 250 and not stored again.
- One JSON line per SMTP transaction goes to the mail log, ``{"received_at", "message_id",
  "dedupe_key", "code", "stored"}``, and one log line to stdout: never an address.
- Fault injection by the recipient's local part, counted per ``Message-ID`` and answered after
  DATA: ``+transientN`` → the first N attempts get 451, ``+throttleN`` → 421, ``+permanent`` →
  always 550.

The mail log is also the sink's memory: a restarted sink reads it back, so attempt counts and
the 24-hour deduplication survive a restart within one ``make run``.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import mailbox
import re
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.parser import BytesHeaderParser, BytesParser
from email.policy import default as default_policy
from pathlib import Path
from typing import Any, Literal, TextIO

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from devstack.serving import configure_logging, serve_until_signalled

logger = logging.getLogger("devstack.mail_sink")

DEDUPE_WINDOW = timedelta(hours=24)
_TAG = re.compile(r"\+(?P<kind>transient|throttle)(?P<count>\d*)(?=\+|$)|\+(?P<permanent>permanent)(?=\+|$)")

Fault = Literal["transient", "throttle", "permanent"]

FAULT_CODES: dict[Fault, int] = {"throttle": 421, "transient": 451, "permanent": 550}
REPLIES = {
    250: "250 2.0.0 Message accepted",
    421: "421 4.7.0 Too many messages, slow down (injected)",
    451: "451 4.3.0 Temporary failure (injected)",
    550: "550 5.7.1 Message refused (injected)",
}


@dataclasses.dataclass(frozen=True)
class Faults:
    """What a recipient's local part asks the sink to do (see the module docstring)."""

    transient: int = 0
    throttle: int = 0
    permanent: bool = False

    @classmethod
    def for_recipients(cls, recipients: list[str]) -> Faults:
        transient = throttle = 0
        permanent = False
        for recipient in recipients:
            local_part = recipient.rpartition("@")[0].lower()
            for tag in _TAG.finditer(local_part):
                if tag["permanent"]:
                    permanent = True
                elif tag["kind"] == "transient":
                    transient = max(transient, int(tag["count"] or 1))
                else:
                    throttle = max(throttle, int(tag["count"] or 1))
        return cls(transient, throttle, permanent)

    def fault_for(self, attempt: int) -> Fault | None:
        """The fault to inject on this attempt (1-based), or None to deliver."""
        if self.permanent:
            return "permanent"
        if attempt <= self.throttle:
            return "throttle"
        if attempt <= self.transient:
            return "transient"
        return None


class SinkHandler:
    """aiosmtpd handler: decides each transaction after DATA, stores it and logs it."""

    def __init__(
        self,
        maildir: Path,
        mail_log: Path,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        maildir.parent.mkdir(parents=True, exist_ok=True)
        self._maildir = mailbox.Maildir(maildir, create=True)
        self._mail_log_path = mail_log
        self._clock = clock
        # One event loop runs the handler; the lock keeps a decision and its log line together.
        self._lock = threading.Lock()
        self._attempts: dict[str, int] = {}
        self._stored_at: dict[str, datetime] = {}
        mail_log.parent.mkdir(parents=True, exist_ok=True)
        self._replay(mail_log)
        self._mail_log: TextIO = mail_log.open("a", encoding="utf-8")

    def _replay(self, mail_log: Path) -> None:
        if not mail_log.exists():
            return
        for line in mail_log.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
                key = entry["message_id"]
                received_at = datetime.fromisoformat(entry["received_at"].replace("Z", "+00:00"))
            except (ValueError, KeyError, TypeError, AttributeError):
                continue  # a torn last line after a crash
            if key is None:
                continue
            self._attempts[key] = self._attempts.get(key, 0) + 1
            if entry.get("stored"):
                self._stored_at[key] = received_at

    def close(self) -> None:
        self._mail_log.close()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or envelope.content or b""
        if isinstance(content, str):
            content = content.encode("utf-8", "surrogateescape")
        recipients = [str(rcpt) for rcpt in envelope.rcpt_tos]
        code, record = self.receive(content, recipients)
        logger.info(
            "smtp transaction code=%s stored=%s message_id=%s dedupe_key=%s",
            code,
            record["stored"],
            record["message_id"],
            record["dedupe_key"],
        )
        return REPLIES[code]

    def receive(self, content: bytes, recipients: list[str]) -> tuple[int, dict[str, Any]]:
        """Decide, store and log one transaction; returns the reply code and the log record."""
        headers = BytesHeaderParser(policy=default_policy).parsebytes(content)
        message_id = _header(headers, "Message-ID")
        dedupe_key = _header(headers, "X-Dedupe-Key")
        # Without a Message-ID there is nothing to be idempotent on: count faults per content.
        counter_key = message_id or "sha256:" + hashlib.sha256(content).hexdigest()
        now = self._clock()
        with self._lock:
            attempt = self._attempts.get(counter_key, 0) + 1
            self._attempts[counter_key] = attempt
            fault = Faults.for_recipients(recipients).fault_for(attempt)
            stored = False
            code = FAULT_CODES[fault] if fault else 250
            if fault is None:
                previous = self._stored_at.get(message_id) if message_id else None
                if previous is None or now - previous >= DEDUPE_WINDOW:
                    self._store(content, recipients)
                    stored = True
                    if message_id:
                        self._stored_at[message_id] = now
            record = {
                "received_at": now.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "message_id": message_id,
                "dedupe_key": dedupe_key,
                "code": code,
                "stored": stored,
            }
            self._mail_log.write(json.dumps(record) + "\n")
            self._mail_log.flush()
        return code, record

    def _store(self, content: bytes, recipients: list[str]) -> None:
        body = content.replace(b"\r\n", b"\n")
        for recipient in recipients:
            delivered_to = f"Delivered-To: {recipient}\n".encode("utf-8", "surrogateescape")
            self._maildir.add(delivered_to + body)


def _header(headers: Any, name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        return None
    return str(value).strip() or None


class _Controller(Controller):
    """aiosmtpd's Controller, able to listen on a free port (port 0)."""

    def _trigger_server(self) -> None:
        if self.server is None:
            raise RuntimeError("aiosmtpd triggers a server only once it has made one")
        sockets = getattr(self.server, "sockets", None) or []
        if sockets:
            self.port = sockets[0].getsockname()[1]
        super()._trigger_server()


class MailSink:
    """The sink as an object: ``start()`` listens (on a free port when ``port=0``), ``stop()`` ends it."""

    def __init__(
        self,
        maildir: Path | str,
        mail_log: Path | str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.host = host
        self.port = port
        self.maildir_path = Path(maildir)
        self.mail_log_path = Path(mail_log)
        self._clock = clock
        self._handler: SinkHandler | None = None
        self._controller: _Controller | None = None

    def start(self) -> MailSink:
        self._handler = SinkHandler(self.maildir_path, self.mail_log_path, self._clock)
        # A fixed server name: aiosmtpd would otherwise ask DNS (getfqdn) on every connection.
        self._controller = _Controller(
            self._handler, hostname=self.host, port=self.port, server_hostname="mail-sink.local"
        )
        try:
            self._controller.start()
        except BaseException:
            self._handler.close()
            raise
        self.port = self._controller.port
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None
        if self._handler is not None:
            self._handler.close()
            self._handler = None

    def __enter__(self) -> MailSink:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def messages(self) -> list[EmailMessage]:
        """Every stored copy as the guest's mail client would parse it, oldest first."""
        box = mailbox.Maildir(self.maildir_path, create=False)
        keys = sorted(box.keys(), key=lambda key: box.get_message(key).get_date())
        parsed = [BytesParser(policy=default_policy).parsebytes(box.get_bytes(key)) for key in keys]
        return [message for message in parsed if isinstance(message, EmailMessage)]

    def mail_log(self) -> list[dict[str, Any]]:
        if not self.mail_log_path.exists():
            return []
        return [json.loads(line) for line in self.mail_log_path.read_text(encoding="utf-8").splitlines()]


def main(argv: list[str] | None = None) -> int:
    """Run the sink until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1025)
    parser.add_argument("--maildir", type=Path, default=Path(".local/maildir"))
    parser.add_argument("--mail-log", type=Path, default=Path(".local/mail-log.jsonl"))
    args = parser.parse_args(argv)

    configure_logging()
    # aiosmtpd's own INFO/DEBUG lines name peers and, at debug, envelope addresses.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    sink = MailSink(args.maildir, args.mail_log, host=args.host, port=args.port).start()
    return serve_until_signalled(sink, logger, f"{sink.host}:{sink.port}")


if __name__ == "__main__":
    sys.exit(main())
