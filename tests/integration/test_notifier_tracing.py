"""The webhook's URL never reaches a trace: the notifier run as Lambda runs it with active
tracing, its X-Ray segments read from the UDP port the X-Ray daemon listens on.

The notifier's process is a fresh interpreter with Lambda's environment (``LAMBDA_TASK_ROOT``,
``_X_AMZN_TRACE_ID`` sampled, ``AWS_XRAY_DAEMON_ADDRESS``), so the Powertools Tracer is created
and patches what it patches in AWS (botocore, httpx...). The webhook's secret is in Secrets
Manager on moto server; the receiver is a real HTTP server on loopback.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import REGION, MotoServer
from tests.unit.notifications.builders import OTHER_SECRET, SECRET, as_body, drift_event

ROOT = Path(__file__).resolve().parents[2]
# The receiver's token, in the URL's path as some receivers issue it.
TOKEN = "tok_in_the_webhook_path"
TRACE_ID = "1-5759e988-bd862e3fe1be46a994272793"
# One invocation of the real handler, with a context as Lambda passes it.
INVOKE = textwrap.dedent(
    """
    import importlib.util, json, sys
    spec = importlib.util.spec_from_file_location("handler", sys.argv[1])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    class Context:
        function_name = "notifier"
        memory_limit_in_mb = 256
        invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:notifier"
        aws_request_id = "request-1"

        def get_remaining_time_in_millis(self):
            return 60_000

    print(json.dumps(module.handler(json.loads(sys.argv[2]), Context())))
    """
)


class _Receiver(BaseHTTPRequestHandler):
    paths: list[str]

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", "0")))
        type(self).paths.append(self.path)
        self.send_response(204)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def receiver_url() -> Iterator[tuple[str, list[str]]]:
    paths: list[str] = []
    handler = type("Receiver", (_Receiver,), {"paths": paths})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hooks/{TOKEN}", paths
    server.shutdown()
    server.server_close()


@pytest.fixture
def xray_daemon() -> Iterator[socket.socket]:
    """A UDP socket where the X-Ray SDK sends its segments, as to the daemon in Lambda."""
    daemon = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    daemon.bind(("127.0.0.1", 0))
    yield daemon
    daemon.close()


def _segments(daemon: socket.socket) -> list[dict[str, Any]]:
    """What the SDK sent: each datagram is a JSON header line, then one segment document."""
    daemon.setblocking(False)
    segments = []
    while True:
        try:
            datagram = daemon.recv(65_535).decode()
        except BlockingIOError:
            return segments
        segments.append(json.loads(datagram.split("\n", 1)[1]))


def test_the_notifier_traces_its_work_but_never_the_webhooks_url(
    moto_server: MotoServer,
    receiver_url: tuple[str, list[str]],
    xray_daemon: socket.socket,
    tmp_path: Path,
) -> None:
    url, received = receiver_url
    # Given the webhook's URL and keys in Secrets Manager, mid-rotation, as operators put them
    arn = moto_server.client("secretsmanager").create_secret(
        Name="drift-webhook",
        SecretString=json.dumps({"url": url, "secret": OTHER_SECRET, "previous": SECRET}),
    )["ARN"]
    event = {
        "Records": [
            {
                "messageId": "m-1",
                "receiptHandle": "r-1",
                "body": as_body(drift_event()),
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": f"arn:aws:sqs:{REGION}:123456789012:notifications",
                "awsRegion": REGION,
            }
        ]
    }
    environment = {
        **{name: value for name, value in os.environ.items() if not name.startswith(("AWS_", "WEBHOOK_"))},
        **moto_server.env,
        # Lambda's environment with active tracing, the daemon being our socket
        "LAMBDA_TASK_ROOT": str(tmp_path),
        "AWS_LAMBDA_FUNCTION_NAME": "notifier",
        "_X_AMZN_TRACE_ID": f"Root={TRACE_ID};Parent=53995c3f42cd8ad8;Sampled=1",
        "AWS_XRAY_DAEMON_ADDRESS": f"127.0.0.1:{xray_daemon.getsockname()[1]}",
        "ENABLE_TRACING": "true",
        "POWERTOOLS_TRACE_DISABLED": "false",
        "POWERTOOLS_SERVICE_NAME": "notifier",
        # The notifier's environment as the stack sets it: the secret's ARN, no URL
        "AWS_ENDPOINT_URL": moto_server.endpoint,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "NOTIFICATIONS_DLQ_URL": moto_server.queues["notifications_dlq"],
        "WEBHOOK_SECRET_ARN": arn,
    }
    # When Lambda invokes the notifier with a drift event
    ran = subprocess.run(
        [sys.executable, "-c", INVOKE, str(ROOT / "lambdas" / "notifier" / "handler.py"), json.dumps(event)],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert json.loads(ran.stdout.splitlines()[-1]) == {"batchItemFailures": []}
    assert received == [f"/hooks/{TOKEN}"]
    # Then the invocation is traced, the Secrets Manager call included ...
    segments = _segments(xray_daemon)
    names = {segment["name"] for segment in segments}
    assert "## handler" in names
    assert "secretsmanager" in names
    assert all(segment["trace_id"] == TRACE_ID for segment in segments)
    # ... and no segment names the webhook's host and port, or carries its path
    traced = json.dumps(segments)
    assert TOKEN not in traced
    assert url.removeprefix("http://").split("/")[0] not in traced
    assert "/hooks/" not in traced
