"""``scripts/dlq.py`` against `make run`, as an operator runs it: a letter the provider still
refuses is redriven once per run, the local worker dead-letters it again, and no run floods."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from typing import Any

import pytest

from booking_durability.emails.models import message_id_for

from .harness import REPO_ROOT, RunningStack, eventually
from .test_local_stack import booking_confirmed, publish

pytestmark = pytest.mark.e2e


def letters_of(stack: RunningStack, job_id: str) -> list[dict[str, Any]]:
    """The email DLQ's letters carrying ``job_id``, looked at and left visible."""
    sqs, url = stack.sqs(), stack.stack_json()["queues"]["email_dlq"]
    found: dict[str, dict[str, Any]] = {}
    for _ in range(5):  # a few receives: each returns some of the visible letters
        for message in sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], VisibilityTimeout=0
        ).get("Messages", []):
            if json.loads(message["Body"]).get("job_id") == job_id:
                found[message["MessageId"]] = message
    return list(found.values())


def dlq_tool(stack: RunningStack, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")} | {
        "LOCAL_DIR": str(stack.local_dir)
    }
    ran = subprocess.run(
        [sys.executable, "scripts/dlq.py", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert "@example.test" not in ran.stdout + ran.stderr
    return ran


def test_a_letter_the_provider_still_refuses_is_moved_once_per_run(running_stack: RunningStack) -> None:
    # Given an email the sink refuses for good (550), dead-lettered by the local worker
    published = publish(
        running_stack, booking_confirmed(f"guest-{uuid.uuid4().hex[:6]}+permanent@example.test")
    )
    [first] = eventually(
        lambda: letters_of(running_stack, published.job_id), timeout=30, what="the dead letter"
    )

    # When the operator redrives it without --force, then with it
    refused = dlq_tool(running_stack, "redrive", "--message-id", first["MessageId"])
    forced = dlq_tool(running_stack, "redrive", "--force", "--message-id", first["MessageId"])

    # Then the first run refuses it, saying why; the second moves it, once
    assert refused.returncode == 2, refused.stderr
    assert "refused: 1 selected not moved; by reason: provider_rejected 1" in refused.stdout
    assert forced.returncode == 0, forced.stderr
    moved = [line for line in forced.stdout.splitlines() if line.startswith("moved ") and " -> " in line]
    assert [line.split()[1] for line in moved] == [first["MessageId"]]
    # And the worker, refused again, dead-letters it again: one letter, under a new message id
    [again] = eventually(
        lambda: [
            m for m in letters_of(running_stack, published.job_id) if m["MessageId"] != first["MessageId"]
        ],
        timeout=30,
        what="the letter dead-lettered again",
    )
    assert len(letters_of(running_stack, published.job_id)) == 1
    attempts = [
        e["code"] for e in running_stack.mail_log() if e["message_id"] == message_id_for(published.dedupe_key)
    ]
    assert attempts == [550, 550]

    # When the same redrive is repeated, and once more for the letter as it is now
    repeated = dlq_tool(running_stack, "redrive", "--force", "--message-id", first["MessageId"])
    once_more = dlq_tool(running_stack, "redrive", "--force", "--message-id", again["MessageId"])
    # Then the first finds nothing left to move, the second moves the new letter once
    assert repeated.returncode == 0
    assert "moved 0 of 0 selected" in repeated.stdout
    assert once_more.returncode == 0
    assert (
        len([line for line in once_more.stdout.splitlines() if line.startswith("moved ") and " -> " in line])
        == 1
    )
    eventually(
        lambda: (
            len(
                [
                    e
                    for e in running_stack.mail_log()
                    if e["message_id"] == message_id_for(published.dedupe_key)
                ]
            )
            == 3
        ),
        timeout=30,
        what="the third refusal",
    )
    assert running_stack.delivered_with(published.dedupe_key) == []
