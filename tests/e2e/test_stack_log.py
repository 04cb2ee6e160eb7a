"""`make run`'s output reads as a log a person can follow: every line names the component it came
from (``email_worker | {...}``), the handlers' metric blobs are in ``metrics.jsonl`` instead, and
moto server's access line for every request (the workers poll all the time) is left out, unless
``LOCAL_VERBOSE=1`` asks for it, as is werkzeug's development server warning."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import boto3
import pytest

from devstack.supervisor import port_accepts

from .harness import REPO_ROOT, RunningStack, eventually, free_port
from .test_local_stack import booking_confirmed, publish

pytestmark = pytest.mark.e2e

#: werkzeug's access line: ``127.0.0.1 - - [30/Nov/2026 06:00:18] "POST / HTTP/1.1" 200 -``.
ACCESS_LINE = re.compile(r'- - \[[^]]+\] "(GET|POST|PUT|DELETE|HEAD) \S+ HTTP/1\.[01]" \d{3}')
#: A line of the stack's log: the component it came from, then that component's own line.
LOG_LINE = re.compile(r"(?P<component>[a-z][a-z0-9_]*) \| (?P<text>.*)")
#: What prints besides the processes of ``stack.json``: the stack itself, and the synth it runs.
NOT_PROCESSES = {"local_stack", "synth"}


def moto_output(verbose: bool) -> str:
    """What moto server (as the local stack starts it) prints while it answers a few requests."""
    port = free_port()
    env = {key: value for key, value in os.environ.items() if key != "LOCAL_VERBOSE"}
    if verbose:
        env["LOCAL_VERBOSE"] = "1"
    process = subprocess.Popen(
        [sys.executable, "-m", "devstack.atomic_moto", "-H", "127.0.0.1", "-p", str(port)],
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        sqs = boto3.client(
            "sqs",
            endpoint_url=f"http://127.0.0.1:{port}",
            region_name="eu-west-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

        eventually(port_accepts("127.0.0.1", port), timeout=30, what="moto server to listen")
        queue_url = sqs.create_queue(QueueName="polled")["QueueUrl"]
        sqs.list_queues()
        for _ in range(3):
            sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=0)
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=30)
    return output


def test_the_stack_log_has_no_moto_access_line_once_workers_have_polled(running_stack: RunningStack) -> None:
    # Given the running stack (moto answered its resources' creation, its workers poll it) and one
    # email through (sent to, received from and deleted from moto's SQS)
    published = publish(running_stack, booking_confirmed("guest@example.test"))
    eventually(lambda: running_stack.delivered_with(published.dedupe_key), what="the email in the Maildir")

    # Then its log shows the handlers' Powertools JSON lines (the worker's, once it has sent it)
    sent = '"email sent"'
    eventually(lambda: any(sent in line for line in running_stack.lines), what="the worker's `email sent`")
    # and the components' lines, and no moto access line
    assert running_stack.lines_of("aws")  # moto's own start-up lines still come through
    assert [line for line in running_stack.lines if ACCESS_LINE.search(line)] == []


def test_every_line_of_the_stack_log_names_its_component_and_metrics_are_kept_apart(
    running_stack: RunningStack,
) -> None:
    # Given the running stack, with one guest's email through (a handler's lines and metrics)
    recipient = f"guest-{uuid.uuid4().hex[:8]}@example.test"
    published = publish(running_stack, booking_confirmed(recipient))
    eventually(lambda: running_stack.delivered_with(published.dedupe_key), what="the email in the Maildir")

    def sent() -> list[dict[str, object]]:
        lines = running_stack.handler_lines("email_worker")
        return [line for line in lines if line.get("message") == "email sent"]

    eventually(sent, what="the worker's `email sent`")
    eventually(lambda: running_stack.metrics(), what="metrics.jsonl")

    # Then every line of its output but `ready` is `<component> | <line>`, for a component it runs
    lines = list(running_stack.lines)
    assert lines.count("ready") == 1
    unnamed = [line for line in lines if line != "ready" and not LOG_LINE.fullmatch(line)]
    assert unnamed == []
    named = {match["component"] for line in lines if (match := LOG_LINE.fullmatch(line))}
    assert named <= set(running_stack.stack_json()["processes"]) | NOT_PROCESSES
    assert {"aws", "email_worker", "api", "mail_sink", "local_stack"} <= named
    # And the handler's line is its Powertools JSON, whole after the prefix
    line = sent()[0]
    assert line["service"] == "email-consumer"
    assert line["level"] == "INFO"
    assert line["function_request_id"]
    # And its metrics are in metrics.jsonl, one EMF blob a line, and none on the console
    assert [line for line in lines if '"_aws"' in line] == []
    blobs = running_stack.metrics()
    assert all("CloudWatchMetrics" in blob["_aws"] for blob in blobs)
    assert any("EmailSent" in blob for blob in blobs)
    # And moto is not announced as a development server, in a warning or at all
    assert [line for line in lines if "development server" in line] == []
    # And the guest's address is in neither
    assert recipient not in running_stack.output()
    assert recipient not in Path(running_stack.stack_json()["metrics_file"]).read_text()
    assert all(json.dumps(blob).find(recipient) < 0 for blob in blobs)


def test_moto_prints_its_access_lines_only_with_local_verbose() -> None:
    # Given moto server as the local stack starts it, answering a few SQS calls
    # When it runs without LOCAL_VERBOSE, Then it prints no access line, but still its start
    quiet = moto_output(verbose=False)
    assert "INFO Running on http://127.0.0.1:" in quiet
    assert not ACCESS_LINE.search(quiet), quiet
    # And never werkzeug's warning that it is a development server
    assert "development server" not in quiet

    # When it runs with LOCAL_VERBOSE=1, Then every request has its access line
    verbose = moto_output(verbose=True)
    assert len(ACCESS_LINE.findall(verbose)) >= 4, verbose
