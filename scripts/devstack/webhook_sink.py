"""The local webhook sink of ``make run``: where the local notifier's drift webhooks land, on loopback.

    python scripts/devstack/webhook_sink.py --host 127.0.0.1 --port 8025 \\
        --webhooks-file .local/webhooks.jsonl [--down-file .local/webhook-down]

Every request, whatever its method or path, is answered 204 once one JSON line is appended to
the webhooks file: ``{"received_at", "path", "headers": {lower-case name: value}, "body": "<raw
body string>"}``. The line is written (and flushed) before the answer, so a notifier told 2xx
means the line is there. The file is appended to, never truncated: a restarted sink keeps the
run's earlier deliveries (the local stack empties it at the start of each run).

A receiver outage, simulated: while the down file exists (``webhook-down`` beside the webhooks
file unless ``--down-file`` names another), every request is answered 503 and appended to no
file, as a receiver that is down keeps nothing. It is looked for on each request, so
``touch .local/webhook-down`` takes the receiver down and ``rm .local/webhook-down`` brings it
back, with no restart.

This process logs one line per request with its method, path, status and ``webhook-id``: never
the body or the signature.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, TextIO

from devstack.serving import ConnectionTrackingServer, configure_logging, serve_until_signalled

logger = logging.getLogger("devstack.webhook_sink")

#: The file whose presence takes the sink down (503), beside the webhooks file by default.
DOWN_FILE_NAME = "webhook-down"
#: Larger bodies are answered 413 (and still logged, without their body): a drift event is small.
MAX_BODY_BYTES = 1024 * 1024


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the notifier's httpx client pools connections
    server: _Server

    def _receive(self) -> None:
        try:
            length = max(0, int(self.headers.get("Content-Length") or 0))
        except ValueError:
            length = 0
        status = 204
        if length > MAX_BODY_BYTES:
            status, body = 413, b""
            self.close_connection = True
        else:
            body = self.rfile.read(length) if length else b""
        if self.server.is_down():
            status = 503
        else:
            self.server.record(self.path, self.headers.items(), body)
        # Logged before answering, so whoever reads the answer can also read the line.
        logger.info(
            "%s %s -> %d webhook-id=%s",
            self.command,
            self.path.partition("?")[0],
            status,
            self.headers.get("webhook-id", "-"),
        )
        self.send_response(status)
        self.send_header("Content-Length", "0")
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()

    do_DELETE = do_GET = do_HEAD = do_OPTIONS = do_PATCH = do_POST = do_PUT = _receive

    def log_message(self, format: str, *args: Any) -> None:
        return  # ours (in _receive) says what matters


class _Server(ConnectionTrackingServer):
    def __init__(self, address: tuple[str, int], webhooks: TextIO, down_file: Path) -> None:
        super().__init__(address, _RequestHandler)
        self._webhooks = webhooks
        self._down_file = down_file
        self._lock = threading.Lock()

    def is_down(self) -> bool:
        return self._down_file.exists()

    def record(self, path: str, headers: Any, body: bytes) -> None:
        line = {
            "received_at": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "path": path,
            "headers": {name.lower(): value for name, value in headers},
            "body": body.decode("utf-8", errors="replace"),
        }
        with self._lock:
            self._webhooks.write(json.dumps(line, ensure_ascii=False) + "\n")
            self._webhooks.flush()


class WebhookSink:
    """The sink as an object: ``start()`` listens (a free port when ``port=0``), ``url`` is its base;
    it answers 503 while ``down_file`` (by default ``webhook-down`` beside ``webhooks_file``) exists."""

    def __init__(
        self, webhooks_file: Path, *, host: str = "127.0.0.1", port: int = 0, down_file: Path | None = None
    ) -> None:
        self.webhooks_file = webhooks_file
        self.down_file = down_file or webhooks_file.parent / DOWN_FILE_NAME
        self.host = host
        self.port = port
        self._webhooks: TextIO | None = None
        self._server: _Server | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> WebhookSink:
        self.webhooks_file.parent.mkdir(parents=True, exist_ok=True)
        self._webhooks = self.webhooks_file.open("a", encoding="utf-8")
        try:
            self._server = _Server((self.host, self.port), self._webhooks, self.down_file)
        except BaseException:
            self._webhooks.close()
            raise
        self.port = self._server.server_address[1]
        self._server.serve_in_background("webhook-sink")
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self._webhooks is not None:
            self._webhooks.close()
            self._webhooks = None

    def __enter__(self) -> WebhookSink:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8025)
    parser.add_argument("--webhooks-file", type=Path, default=Path(".local/webhooks.jsonl"))
    parser.add_argument(
        "--down-file", type=Path,
        help=f"answer 503 while this file exists (default: {DOWN_FILE_NAME} beside the webhooks file)",
    )  # fmt: skip
    args = parser.parse_args(argv)

    configure_logging()
    sink = WebhookSink(args.webhooks_file, host=args.host, port=args.port, down_file=args.down_file).start()
    return serve_until_signalled(sink, logger, sink.url)


if __name__ == "__main__":
    sys.exit(main())
