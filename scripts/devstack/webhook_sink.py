"""The local webhook sink (CONTRACT §3): where the local notifier's drift webhooks land, on loopback.

    python scripts/devstack/webhook_sink.py --host 127.0.0.1 --port 8025 \\
        --webhooks-file .local/webhooks.jsonl

Every request, whatever its method or path, is answered 204 once one JSON line is appended to
the webhooks file: ``{"received_at", "path", "headers": {lower-case name: value}, "body": "<raw
body string>"}``. The line is written (and flushed) before the answer, so a notifier told 2xx
means the line is there. The file is appended to, never truncated: a restarted sink keeps the
run's earlier deliveries (the local stack empties it at the start of each run).

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
    def __init__(self, address: tuple[str, int], webhooks: TextIO) -> None:
        super().__init__(address, _RequestHandler)
        self._webhooks = webhooks
        self._lock = threading.Lock()

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
    """The sink as an object: ``start()`` listens (a free port when ``port=0``), ``url`` is its base."""

    def __init__(self, webhooks_file: Path, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.webhooks_file = webhooks_file
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
            self._server = _Server((self.host, self.port), self._webhooks)
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
    parser = argparse.ArgumentParser(description="The local webhook sink, on loopback.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8025)
    parser.add_argument("--webhooks-file", type=Path, default=Path(".local/webhooks.jsonl"))
    args = parser.parse_args(argv)

    configure_logging("webhook_sink")
    sink = WebhookSink(args.webhooks_file, host=args.host, port=args.port).start()
    return serve_until_signalled(sink, logger, sink.url)


if __name__ == "__main__":
    sys.exit(main())
