"""`make run`'s output reads as a log a person can follow (issue 9): moto server's access line for
every request (the workers poll all the time) is left out, unless ``LOCAL_VERBOSE=1`` asks for it."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import boto3
import pytest

from devstack.supervisor import port_accepts

from .harness import REPO_ROOT, RunningStack, eventually, free_port
from .test_local_stack import booking_confirmed, publish

pytestmark = pytest.mark.e2e

#: werkzeug's access line: ``127.0.0.1 - - [30/Nov/2026 06:00:18] "POST / HTTP/1.1" 200 -``.
ACCESS_LINE = re.compile(r'- - \[[^]]+\] "(GET|POST|PUT|DELETE|HEAD) \S+ HTTP/1\.[01]" \d{3}')


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
    assert "[aws]" in running_stack.output()  # moto's own start-up lines still come through
    assert [line for line in running_stack.lines if ACCESS_LINE.search(line)] == []


def test_moto_prints_its_access_lines_only_with_local_verbose() -> None:
    # Given moto server as the local stack starts it, answering a few SQS calls
    # When it runs without LOCAL_VERBOSE, Then it prints no access line, but still its start
    quiet = moto_output(verbose=False)
    assert "Running on http://127.0.0.1:" in quiet
    assert not ACCESS_LINE.search(quiet), quiet

    # When it runs with LOCAL_VERBOSE=1, Then every request has its access line
    verbose = moto_output(verbose=True)
    assert len(ACCESS_LINE.findall(verbose)) >= 4, verbose
