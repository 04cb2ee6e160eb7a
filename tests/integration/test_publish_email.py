"""``scripts/publish_email.py`` as a command against a local moto server, from a shell set up for
a deployed stack: it publishes to the local stack all the same, and prints no address."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.builders import GUEST_EMAIL
from tests.integration.conftest import ROOT, MotoServer, attributes


def test_it_publishes_to_the_local_stack_whatever_the_shells_aws_settings(
    tmp_path: Path, moto_server: MotoServer
) -> None:
    # Given the local stack's stack.json, and a shell pointed at a deployed stack in another region
    env = moto_server.write_stack_json(tmp_path, queues=moto_server.queues)
    env |= {"AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}
    # When an email is published
    ran = subprocess.run(
        [sys.executable, "scripts/publish_email.py", "--to", GUEST_EMAIL, "--booking-id", "bk_7"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # Then it is on the local email queue, and the command printed its ids only
    assert ran.returncode == 0, ran.stderr
    printed = json.loads(ran.stdout)
    assert printed["dedupe_key"] == "bk_7#booking_confirmed#0"
    assert GUEST_EMAIL not in ran.stdout + ran.stderr
    sqs = moto_server.client("sqs")
    [message] = sqs.receive_message(
        QueueUrl=moto_server.queues["email"], MessageAttributeNames=["All"], WaitTimeSeconds=0
    )["Messages"]
    assert json.loads(message["Body"])["job_id"] == printed["job_id"]
    assert attributes(message)["email_type"] == "booking_confirmed"
