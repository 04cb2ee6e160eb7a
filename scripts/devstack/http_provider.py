"""A Resend-compatible HTTP provider double on loopback, for the local stack, tests and benchmark.

    python scripts/devstack/http_provider.py --port 8030 --latency-ms 100

``POST /emails`` behaves like Resend where the service relies on it:

- ``Authorization: Bearer <key>`` is required (401 without; 403 when the double was given an
  ``api_key`` and another is sent); ``Idempotency-Key`` is required here (400 without), so a
  client that forgets it fails loudly.
- Idempotency: the same key with the same payload answers the first id again and delivers
  nothing new; the same key with another payload is 409 ``invalid_idempotent_request``; a
  request whose key is still in flight is 409 ``concurrent_idempotent_requests``.
- Fault injection by the recipient's local part, counted per ``Idempotency-Key`` (requests
  refused as concurrent do not count): ``+transientN`` → 503 for the first N attempts,
  ``+throttleN`` → 429 with ``retry-after: 1``, ``+permanent`` → always 422.
- ``latency_seconds`` delays every accepted request (the benchmark uses 0.1 s).

Log lines carry the status and the idempotency key (a dedupe key: ids only), never an address.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from email.utils import parseaddr
from http.server import BaseHTTPRequestHandler
from typing import Any

from devstack.mail_sink import Faults
from devstack.serving import ConnectionTrackingServer, configure_logging, serve_until_signalled

logger = logging.getLogger("devstack.http_provider")

MAX_BODY_BYTES = 1024 * 1024


@dataclasses.dataclass(frozen=True)
class Delivery:
    """One email the double accepted as a new delivery (a replay adds none)."""

    id: str
    idempotency_key: str
    sender: str
    to: list[str]
    subject: str
    html: str | None
    text: str | None
    headers: dict[str, str]
    received_at: datetime


@dataclasses.dataclass(frozen=True)
class Answer:
    """One request's outcome, for tests: ``idempotency_key`` and the status it got."""

    idempotency_key: str | None
    status: int


class _State:
    def __init__(self, api_key: str | None, latency_seconds: float) -> None:
        self.api_key = api_key
        self.latency_seconds = latency_seconds
        self.lock = threading.Lock()
        self.deliveries: list[Delivery] = []
        self.answers: list[Answer] = []
        self.attempts: dict[str, int] = {}
        self.in_flight: set[str] = set()
        # idempotency key -> (canonical payload, delivered id)
        self.completed: dict[str, tuple[str, str]] = {}

    def handle(self, headers: Any, body: bytes) -> tuple[int, dict[str, str], dict[str, Any]]:
        authorization = headers.get("Authorization", "")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return 401, {}, _error("missing_api_key", "Missing API key in the authorization header.", 401)
        if self.api_key is not None and token.strip() != self.api_key:
            return 403, {}, _error("invalid_api_key", "API key is invalid.", 403)
        key = headers.get("Idempotency-Key", "").strip()
        if not key:
            return 400, {}, _error("validation_error", "This double requires an Idempotency-Key header.", 400)
        try:
            payload = json.loads(body)
        except ValueError:
            return 400, {}, _error("validation_error", "Body is not valid JSON.", 400)
        problem = _payload_problem(payload)
        if problem:
            return 422, {}, _error("validation_error", problem, 422)

        with self.lock:
            if key in self.in_flight:
                return (
                    409,
                    {},
                    _error(
                        "concurrent_idempotent_requests",
                        "Same idempotency key used while original request is still in progress.",
                        409,
                    ),
                )
            self.in_flight.add(key)
            attempt = self.attempts[key] = self.attempts.get(key, 0) + 1
        try:
            if self.latency_seconds > 0:
                time.sleep(self.latency_seconds)
            return self._decide(key, attempt, payload)
        finally:
            with self.lock:
                self.in_flight.discard(key)

    def _decide(self, key: str, attempt: int, payload: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
        recipients = [parseaddr(entry)[1] for entry in _recipients(payload)]
        fault = Faults.for_recipients(recipients).fault_for(attempt)
        if fault == "permanent":
            return 422, {}, _error("validation_error", "Recipient refused (injected).", 422)
        if fault == "throttle":
            return (
                429,
                {"retry-after": "1"},
                _error("rate_limit_exceeded", "Too many requests (injected).", 429),
            )
        if fault == "transient":
            return 503, {}, _error("internal_server_error", "Service unavailable (injected).", 503)

        canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        with self.lock:
            previous = self.completed.get(key)
            if previous is not None:
                if previous[0] == canonical:
                    return 200, {}, {"id": previous[1]}
                return (
                    409,
                    {},
                    _error(
                        "invalid_idempotent_request",
                        "Same idempotency key used with a different request payload.",
                        409,
                    ),
                )
            delivery = Delivery(
                id=str(uuid.uuid4()),
                idempotency_key=key,
                sender=str(payload["from"]),
                to=_recipients(payload),
                subject=str(payload["subject"]),
                html=payload.get("html"),
                text=payload.get("text"),
                headers={str(k): str(v) for k, v in (payload.get("headers") or {}).items()},
                received_at=datetime.now(UTC),
            )
            self.deliveries.append(delivery)
            self.completed[key] = (canonical, delivery.id)
        return 200, {}, {"id": delivery.id}


def _recipients(payload: dict[str, Any]) -> list[str]:
    to = payload.get("to")
    return [str(to)] if isinstance(to, str) else [str(entry) for entry in to or []]


def _payload_problem(payload: Any) -> str | None:
    if not isinstance(payload, dict):
        return "Body must be a JSON object."
    for field in ("from", "to", "subject"):
        if not payload.get(field):
            return f"Missing `{field}` field."
    if not payload.get("html") and not payload.get("text"):
        return "Missing `html` or `text` field."
    headers = payload.get("headers")
    if headers is not None and not isinstance(headers, dict):
        return "`headers` must be an object."
    return None


def _error(name: str, message: str, status: int) -> dict[str, Any]:
    return {"statusCode": status, "name": name, "message": message}


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the provider's httpx client pools connections
    server: _Server

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self._reply(413, {}, _error("validation_error", "Body too large.", 413), key=None)
            self.close_connection = True
            return
        body = self.rfile.read(length)
        if self.path.rstrip("/") != "/emails":
            self._reply(404, {}, _error("not_found", "The requested endpoint does not exist.", 404), key=None)
            return
        status, headers, document = self.server.state.handle(self.headers, body)
        self._reply(status, headers, document, key=self.headers.get("Idempotency-Key"))

    def do_GET(self) -> None:
        self._reply(404, {}, _error("not_found", "The requested endpoint does not exist.", 404), key=None)

    def _reply(self, status: int, headers: dict[str, str], document: Any, *, key: str | None) -> None:
        with self.server.state.lock:
            self.server.state.answers.append(Answer(key, status))
        # Logged before answering, so whoever reads the answer can also read the line.
        logger.info("POST %s -> %s idempotency_key=%s", self.path, status, key)
        payload = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        # The default line names the client; ours (in _reply) says what matters, without personal data.
        return


class _Server(ConnectionTrackingServer):
    request_queue_size = 256  # the benchmark opens many connections at once

    def __init__(self, address: tuple[str, int], state: _State) -> None:
        super().__init__(address, _RequestHandler)
        self.state = state


class HttpProviderDouble:
    """The double as an object: ``start()`` listens (free port when ``port=0``), ``url`` is its base URL."""

    def __init__(
        self,
        latency_seconds: float = 0.0,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self._state = _State(api_key, latency_seconds)
        self._server: _Server | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> HttpProviderDouble:
        self._server = _Server((self.host, self.port), self._state)
        self.port = self._server.server_address[1]
        self._server.serve_in_background("http-provider")
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> HttpProviderDouble:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def deliveries(self) -> list[Delivery]:
        """New deliveries, in the order they were accepted."""
        with self._state.lock:
            return list(self._state.deliveries)

    @property
    def answers(self) -> list[Answer]:
        """Every request's key and status, in the order answered."""
        with self._state.lock:
            return list(self._state.answers)

    def attempts(self, idempotency_key: str) -> int:
        """Requests counted for this key (concurrent refusals excluded)."""
        with self._state.lock:
            return self._state.attempts.get(idempotency_key, 0)


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(description="Resend-compatible HTTP provider double on loopback.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8030)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--api-key", default=None, help="accept only this key (any key when omitted)")
    args = parser.parse_args(argv)

    configure_logging()
    double = HttpProviderDouble(
        args.latency_ms / 1000, host=args.host, port=args.port, api_key=args.api_key
    ).start()
    return serve_until_signalled(double, logger, double.url)


if __name__ == "__main__":
    sys.exit(main())
