"""The local inbox page: what guests and the admin received, on loopback
(docs/reference/local-stack.md#inbox-page).

    python scripts/devstack/inbox.py --host 127.0.0.1 --port 8026 --maildir .local/maildir \\
        --webhooks-file .local/webhooks.jsonl --aws-endpoint-url http://127.0.0.1:4566 \\
        --region eu-west-1 --dlq email=QUEUE_URL,DLQ_URL --dlq notifications=QUEUE_URL,DLQ_URL

Like Mailpit or MailDev, for the local stack's sinks:

``/``
    the delivered emails, newest first (time, type, locale, dedupe key, subject), the dead
    letters of both DLQs by reason, and the webhook deliveries.
``/messages/<key>``
    one email (``key`` is its Maildir key): its headers, its HTML part in a sandboxed frame and
    its text part; ``.../html``, ``.../text`` and ``.../source`` serve each alone.

What it reads, and how:

- The Maildir the SMTP sink writes. The type comes from ``X-Dedupe-Key``
  (``{booking_id}#{email_type}#{revision}``); the locale from ``Content-Language`` when a
  message has one, else from the HTML part's ``<html lang>``, which the renderer sets.
- The DLQs, the way ``scripts/dlq.py inspect`` looks at them (``operations.sweep``): each letter
  is received hidden for a few seconds and made visible again, nothing is deleted, and only its
  attributes are shown (failure_reason, type, attempts, age): never a body, which holds the
  guest's address and name.
- The webhook sink's file: time, path, ``webhook-id`` and the event's type; the body (a drift
  event: ids and hashes only) folded under each line.

It serves no data off loopback: it binds a loopback address only, and answers 403 to a request
whose ``Host`` is not a loopback name, so a web page whose domain was re-bound to 127.0.0.1 (DNS
rebinding) cannot read it. An email's HTML is served under a Content-Security-Policy that allows
inline styles and ``data:`` images only (no script, no remote content, a sandboxed origin) and is
shown in an ``<iframe sandbox>``.
"""

from __future__ import annotations

import argparse
import email.policy
import ipaddress
import json
import logging
import os
import re
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.parser import BytesParser
from html.parser import HTMLParser
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import boto3
import jinja2

from booking_durability.errors import InfrastructureError
from devstack.serving import ConnectionTrackingServer, configure_logging, serve_until_signalled
from operations.dead_letter_queues import QueueCounts, SqsDeadLetterQueue
from operations.dead_letters import DeadLetter, QueueKind, label
from operations.selection import Selection, describe_duration
from operations.sweep import sweep

logger = logging.getLogger("devstack.inbox")

TEMPLATES_DIR = Path(__file__).resolve().parent / "inbox_templates"
#: How long a letter being looked at stays hidden if the page dies mid-look (SQS then shows it).
HIDE_SECONDS = 10
# moto takes any credentials; explicit dummies keep real ones out of a local run.
MOTO_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
#: Host names this page answers to; anything else is a name someone pointed at loopback.
LOOPBACK_NAMES = frozenset({"localhost", "localhost.", "127.0.0.1", "::1"})
#: A header shown on an email's page, in this order, when the message has it.
SHOWN_HEADERS = (
    "Subject",
    "From",
    "To",
    "Delivered-To",
    "Date",
    "Message-ID",
    "X-Dedupe-Key",
    "X-Job-Id",
    "Content-Language",
)

PAGE_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; frame-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
#: An email's HTML: its inline styles and embedded images render; nothing runs or loads.
EMAIL_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; font-src data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'self'; sandbox"
)
_BASE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "Cross-Origin-Resource-Policy": "same-origin",
}


# -- what the page shows ----------------------------------------------------------------------


@dataclass(frozen=True)
class DeliveredEmail:
    """One message of the Maildir, as the inbox lists it."""

    key: str
    delivered_at: datetime
    dedupe_key: str
    email_type: str
    locale: str
    subject: str
    message: EmailMessage = field(repr=False, compare=False)

    @property
    def path(self) -> str:
        return f"/messages/{quote(self.key, safe='')}"

    def part(self, subtype: str) -> str | None:
        """The ``text/<subtype>`` part's content (``html`` or ``plain``), if the message has one."""
        body = self.message.get_body(preferencelist=(subtype,))
        if body is None or body.get_content_type() != f"text/{subtype}":
            return None
        content = body.get_content()
        return content if isinstance(content, str) else None

    def headers(self) -> list[tuple[str, str]]:
        return [(name, str(self.message[name])) for name in SHOWN_HEADERS if self.message[name] is not None]


def email_type_of(dedupe_key: str | None) -> str:
    """The middle part of ``{booking_id}#{email_type}#{revision}``, or ``-``."""
    parts = (dedupe_key or "").rsplit("#", 2)
    return label(parts[1], missing="-") if len(parts) == 3 else "-"


class _HtmlLang(HTMLParser):
    """Reads the ``lang`` attribute of the first ``<html>`` tag, and stops caring after it."""

    def __init__(self) -> None:
        super().__init__()
        self.lang: str | None = None
        self.done = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if not self.done and tag == "html":
            self.lang = dict(attrs).get("lang")
            self.done = True


def locale_of(message: EmailMessage) -> str:
    """``Content-Language`` when set, else the HTML part's ``<html lang>``, else ``-``."""
    declared = message["Content-Language"]
    if declared:
        return label(str(declared).strip(), missing="-")
    body = message.get_body(preferencelist=("html",))
    if body is None or body.get_content_type() != "text/html":
        return "-"
    parser = _HtmlLang()
    parser.feed(str(body.get_content()))
    return label(parser.lang, missing="-")


def read_maildir(maildir: Path) -> list[DeliveredEmail]:
    """Every stored message, newest first (by the time the sink stored it)."""
    found = []
    for key, path in _maildir_files(maildir).items():
        delivered = _read_delivered(key, path)
        if delivered is not None:
            found.append(delivered)
    return sorted(found, key=lambda delivered: (delivered.delivered_at, delivered.key), reverse=True)


def _maildir_files(maildir: Path) -> dict[str, Path]:
    """Each stored message's file by its Maildir key (the file's name up to the ``:`` of its flags),
    in ``new/`` and ``cur/``."""
    files: dict[str, Path] = {}
    for folder in (maildir / "new", maildir / "cur"):
        if not folder.is_dir():
            continue
        for entry in folder.iterdir():
            if not entry.is_dir():
                files[entry.name.split(":")[0]] = entry
    return files


def _read_delivered(key: str, path: Path) -> DeliveredEmail | None:
    """The message in ``path``, read and parsed once; ``None`` if it was moved or removed meanwhile.
    It was delivered when the sink stored it: the file's modification time."""
    try:
        with path.open("rb") as file:
            stored_at = os.fstat(file.fileno()).st_mtime
            raw = file.read()
    except FileNotFoundError:
        return None
    message = BytesParser(policy=email.policy.default).parsebytes(raw)
    dedupe_key = str(message["X-Dedupe-Key"] or "")
    return DeliveredEmail(
        key=key,
        delivered_at=datetime.fromtimestamp(stored_at, UTC),
        dedupe_key=dedupe_key or "-",
        email_type=email_type_of(dedupe_key),
        locale=locale_of(message),
        subject=str(message["Subject"] or ""),
        message=message,
    )


@dataclass(frozen=True)
class WebhookDelivery:
    """One request the webhook sink received."""

    received_at: str
    path: str
    webhook_id: str
    event_type: str
    body: str


def read_webhooks(webhooks_file: Path) -> list[WebhookDelivery]:
    """Every line of the webhook sink's file, newest first (a torn last line is skipped)."""
    if not webhooks_file.exists():
        return []
    deliveries = []
    for line in webhooks_file.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
            headers, raw_body = entry.get("headers") or {}, str(entry.get("body", ""))
        except (ValueError, AttributeError):
            continue
        deliveries.append(
            WebhookDelivery(
                received_at=_shown_time(str(entry.get("received_at", "-"))),
                path=str(entry.get("path", "-")),
                webhook_id=str(headers.get("webhook-id", "-")),
                event_type=_event_type(raw_body),
                body=_pretty(raw_body),
            )
        )
    return deliveries[::-1]


def _shown_time(stamp: str) -> str:
    """``2026-11-30T06:17:47.151Z`` as the page shows times (``2026-11-30 06:17:47``)."""
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return stamp


def _event_type(body: str) -> str:
    try:
        event = json.loads(body)
    except ValueError:
        return "-"
    return label(event.get("type"), missing="-") if isinstance(event, dict) else "-"


def _pretty(body: str) -> str:
    try:
        return json.dumps(json.loads(body), indent=2, ensure_ascii=False)
    except ValueError:
        return body


@dataclass(frozen=True)
class DeadLetterRow:
    failure_reason: str
    message_type: str
    attempts: str
    age: str
    message_id: str


@dataclass(frozen=True)
class DeadLetterReport:
    """One DLQ as the page shows it: counts and letters by attributes only, or what failed."""

    queue: str
    counts: QueueCounts | None = None
    rows: Sequence[DeadLetterRow] = ()
    by_reason: Mapping[str, int] = field(default_factory=dict)
    error: str | None = None


def look_at_dead_letters(dlq: SqsDeadLetterQueue, now: datetime) -> DeadLetterReport:
    """Every letter of ``dlq``, looked at without consuming it (see the module's docstring)."""
    try:
        counts = dlq.counts()
    except InfrastructureError as exc:
        return DeadLetterReport(dlq.kind.value, error=str(exc) or exc.code)
    looked = sweep(dlq, Selection(), now, None, hide_for=HIDE_SECONDS)
    letters: list[DeadLetter] = sorted(looked.selected, key=lambda d: (d.failure_reason, d.sent_at))
    by_reason: dict[str, int] = {}
    for letter in letters:
        by_reason[letter.failure_reason] = by_reason.get(letter.failure_reason, 0) + 1
    rows = [
        DeadLetterRow(
            failure_reason=letter.failure_reason,
            message_type=letter.message_type,
            attempts=letter.attempts,
            age=describe_duration(letter.age(now)),
            message_id=letter.message_id,
        )
        for letter in letters
    ]
    error = looked.stopped.code if looked.stopped else None
    return DeadLetterReport(dlq.kind.value, counts, rows, by_reason, error)


# -- serving -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class InboxSources:
    """Where the inbox reads from."""

    maildir: Path
    webhooks_file: Path
    dead_letter_queues: Sequence[SqsDeadLetterQueue] = ()


_HOST_HEADER = re.compile(r"^(?:\[(?P<ipv6>[0-9A-Fa-f:.]+)\]|(?P<name>[A-Za-z0-9.-]+))(?::[0-9]{1,5})?$")


def is_loopback_host(host_header: str | None) -> bool:
    """True when a request's ``Host`` names loopback (``127.0.0.1:8026``, ``localhost``, ``[::1]``)."""
    found = _HOST_HEADER.fullmatch((host_header or "").strip())
    if found is None:
        return False
    hostname = (found["ipv6"] or found["name"]).lower()
    if hostname in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _InboxServer

    def do_HEAD(self) -> None:
        self._answer(head=True)

    def do_GET(self) -> None:
        self._answer(head=False)

    def _answer(self, *, head: bool) -> None:
        if not is_loopback_host(self.headers.get("Host")):
            self._send(
                HTTPStatus.FORBIDDEN, "text/plain", b"this inbox answers loopback host names only\n", head
            )
            return
        try:
            status, content_type, body, csp = self.server.route(urlsplit(self.path).path)
        except Exception:
            logger.exception("GET %s failed", urlsplit(self.path).path)
            status, content_type, body, csp = (
                HTTPStatus.INTERNAL_SERVER_ERROR,
                "text/plain",
                b"failed\n",
                None,
            )
        self._send(status, content_type, body, head, csp)

    def _send(
        self, status: HTTPStatus, content_type: str, body: bytes, head: bool, csp: str | None = PAGE_CSP
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", f"{content_type}; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Security-Policy", csp or PAGE_CSP)
        for name, value in _BASE_HEADERS.items():
            self.send_header(name, value)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return  # one line per page is noise in `make run`'s log


class _InboxServer(ConnectionTrackingServer):
    def __init__(self, address: tuple[str, int], sources: InboxSources) -> None:
        super().__init__(address, _RequestHandler)
        self.sources = sources
        self.templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        # Two looks at one DLQ at once would each find the letters the other hides.
        self._dlq_lock = threading.Lock()

    def route(self, path: str) -> tuple[HTTPStatus, str, bytes, str | None]:
        """``(status, content type, body, CSP or None for the page's)`` of a GET of ``path``."""
        if path == "/":
            return HTTPStatus.OK, "text/html", self._index(), None
        if path == "/favicon.ico":
            return HTTPStatus.NO_CONTENT, "text/plain", b"", None
        if path == "/inbox.css":
            return HTTPStatus.OK, "text/css", (TEMPLATES_DIR / "inbox.css").read_bytes(), None
        parts = path.split("/")
        if len(parts) in (3, 4) and parts[1] == "messages":
            delivered = self._email(unquote(parts[2]))
            view = parts[3] if len(parts) == 4 else ""
            if delivered is not None:
                return self._email_view(delivered, view)
        return HTTPStatus.NOT_FOUND, "text/html", self._page("missing.html"), None

    def _index(self) -> bytes:
        now = datetime.now(UTC)
        with self._dlq_lock:
            dead_letters = [look_at_dead_letters(dlq, now) for dlq in self.sources.dead_letter_queues]
        return self._page(
            "index.html",
            now=now,
            emails=read_maildir(self.sources.maildir),
            dead_letters=dead_letters,
            webhooks=read_webhooks(self.sources.webhooks_file),
            maildir=str(self.sources.maildir),
            webhooks_file=str(self.sources.webhooks_file),
        )

    def _email(self, key: str) -> DeliveredEmail | None:
        path = _maildir_files(self.sources.maildir).get(key)
        return None if path is None else _read_delivered(key, path)

    def _email_view(self, delivered: DeliveredEmail, view: str) -> tuple[HTTPStatus, str, bytes, str | None]:
        if view == "":
            page = self._page(
                "message.html",
                email=delivered,
                has_html=delivered.part("html") is not None,
                text=delivered.part("plain"),
            )
            return HTTPStatus.OK, "text/html", page, None
        if view == "html":
            html = delivered.part("html")
            if html is not None:
                return HTTPStatus.OK, "text/html", html.encode("utf-8"), EMAIL_CSP
        elif view == "text":
            text = delivered.part("plain")
            if text is not None:
                return HTTPStatus.OK, "text/plain", text.encode("utf-8"), None
        elif view == "source":
            return HTTPStatus.OK, "text/plain", delivered.message.as_bytes(), None
        return HTTPStatus.NOT_FOUND, "text/html", self._page("missing.html"), None

    def _page(self, template: str, **context: Any) -> bytes:
        return self.templates.get_template(template).render(context).encode("utf-8")


class Inbox:
    """The page as an object: ``start()`` listens (a free port when ``port=0``), ``url`` is its address."""

    def __init__(self, sources: InboxSources, *, host: str = "127.0.0.1", port: int = 0) -> None:
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"the inbox serves loopback only, not {host}")
        self.sources = sources
        self.host = host
        self.port = port
        self._server: _InboxServer | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def start(self) -> Inbox:
        self._server = _InboxServer((self.host, self.port), self.sources)
        self.port = self._server.server_address[1]
        self._server.serve_in_background("inbox")
        return self

    def stop(self) -> None:
        """Stop serving; a browser's idle keep-alive connections are dropped too."""
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> Inbox:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def dead_letter_queues(
    queues: Mapping[str, tuple[str, str]], *, endpoint_url: str, region: str
) -> list[SqsDeadLetterQueue]:
    """The DLQs named ``{kind: (source queue URL, DLQ URL)}``, on the local endpoint (moto)."""
    session = boto3.session.Session(**MOTO_CREDENTIALS, region_name=region)
    client = session.client("sqs", endpoint_url=endpoint_url)
    # No long poll: moto answers every receive from the whole queue.
    return [
        SqsDeadLetterQueue(QueueKind(kind), dlq_url, source_url, client, wait_seconds=0)
        for kind, (source_url, dlq_url) in queues.items()
    ]


def _dlq_argument(text: str) -> tuple[str, tuple[str, str]]:
    kind, _, urls = text.partition("=")
    source_url, _, dlq_url = urls.partition(",")
    if kind not in {k.value for k in QueueKind} or not source_url or not dlq_url:
        raise argparse.ArgumentTypeError("expected KIND=QUEUE_URL,DLQ_URL (KIND: email or notifications)")
    return kind, (source_url, dlq_url)


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(description="The local inbox page, on loopback.")
    parser.add_argument("--host", default="127.0.0.1", help="a loopback address")
    parser.add_argument("--port", type=int, default=8026)
    parser.add_argument("--maildir", type=Path, default=Path(".local/maildir"))
    parser.add_argument("--webhooks-file", type=Path, default=Path(".local/webhooks.jsonl"))
    parser.add_argument("--aws-endpoint-url", default="http://127.0.0.1:4566")
    parser.add_argument("--region", default="eu-west-1")
    parser.add_argument(
        "--dlq", type=_dlq_argument, action="append", default=[], metavar="KIND=QUEUE_URL,DLQ_URL"
    )
    args = parser.parse_args(argv)
    if not ipaddress.ip_address(args.host).is_loopback:
        parser.error("--host must be a loopback address: the inbox shows what guests receive")

    configure_logging()
    queues = dead_letter_queues(dict(args.dlq), endpoint_url=args.aws_endpoint_url, region=args.region)
    inbox = Inbox(InboxSources(args.maildir, args.webhooks_file, queues), host=args.host, port=args.port)
    return serve_until_signalled(inbox.start(), logger, inbox.url)


if __name__ == "__main__":
    sys.exit(main())
