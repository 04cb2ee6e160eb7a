"""`make run` as its users meet it: stack.json, a job through SQS into the Maildir, restarts."""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from datetime import datetime
from typing import Any

import pytest

from booking_durability.adapters.email_queue import EmailQueue
from booking_durability.emails.models import message_id_for
from booking_durability.emails.producer import PublishedEmail, publish_email
from devstack.worker import LONG_POLL_SECONDS

from .harness import RunningStack, eventually, pid_alive

pytestmark = pytest.mark.e2e

# The local stage hops at most 5 s at a time (docs/reference/local-stack.md#quick-retries).
LOCAL_HOP_SECONDS = 5


def booking_confirmed(recipient: str, booking_id: str | None = None) -> dict[str, Any]:
    return {
        "booking_id": booking_id or f"e2e-{uuid.uuid4().hex[:12]}",
        "email_type": "booking_confirmed",
        "recipient": {"email": recipient, "name": "Ana"},
        "data": {
            "restaurant_name": "Casa Lucio",
            "party_size": 2,
            "starts_at": "2031-05-01T20:00:00Z",
            "reference": "R-1234",
        },
    }


def publish(stack: RunningStack, request: dict[str, Any]) -> PublishedEmail:
    """Send a job to the email queue the way the booking app does."""
    queue_url = stack.stack_json()["queues"]["email"]
    return publish_email(
        request,
        queue=EmailQueue(queue_url, stack.sqs()),
        max_hop_seconds=LOCAL_HOP_SECONDS,
    )


def queue_is_empty(stack: RunningStack, queue_url: str) -> bool:
    attributes = stack.sqs().get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return all(value == "0" for value in attributes.values())


def test_stack_json_says_where_every_component_is(local_stack: dict[str, Any], running_stack: RunningStack):
    # Given the running local stack
    # When a tool reads stack.json
    info = local_stack

    # Then it finds the endpoint, the queues, the table, the sink's files and every process
    assert info["aws_endpoint_url"].startswith("http://127.0.0.1:")
    assert info["region"]
    assert set(info["queues"]) >= {"email", "email_dlq", "notifications", "notifications_dlq"}
    assert all(url.startswith(info["aws_endpoint_url"] + "/") for url in info["queues"].values())
    assert set(info["tables"]) >= {"deliveries"}
    assert info["maildir"] == str(running_stack.local_dir / "maildir")
    assert info["mail_log"] == str(running_stack.local_dir / "mail-log.jsonl")
    assert info["api_url"].startswith("http://127.0.0.1:")
    assert set(info["processes"]) >= {
        *("aws", "api", "email_worker", "notifications_worker", "notifications_stream"),
        *("mail_sink", "webhook_sink", "inbox", "scheduler"),
    }
    assert info["inbox_url"] == f"http://127.0.0.1:{running_stack.variables['LOCAL_INBOX_PORT']}/"
    assert info["webhooks_file"] == str(running_stack.local_dir / "webhooks.jsonl")
    assert info["webhook_url"].startswith("http://127.0.0.1:")
    # (now: other tests kill components, which are restarted with new pids)
    assert all(pid_alive(pid) for pid in running_stack.stack_json()["processes"].values())

    # And the queues and table are the template's: the email queue dead-letters after 5 receives,
    # with the local stage's quick visibility timeout; the table expires records by TTL
    sqs = running_stack.sqs()
    email = sqs.get_queue_attributes(QueueUrl=info["queues"]["email"], AttributeNames=["All"])["Attributes"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=info["queues"]["email_dlq"], AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    assert json.loads(email["RedrivePolicy"]) == {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 5}
    assert int(email["VisibilityTimeout"]) <= 60
    ttl = running_stack.dynamodb().describe_time_to_live(TableName=info["tables"]["deliveries"])
    assert ttl["TimeToLiveDescription"]["TimeToLiveStatus"] == "ENABLED"


def test_a_published_job_lands_in_the_maildir_with_the_contract_headers(running_stack: RunningStack):
    # Given a guest's booking_confirmed job published to the email queue
    recipient = f"guest-{uuid.uuid4().hex[:8]}@example.test"
    published = publish(running_stack, booking_confirmed(recipient))

    # When the email worker has run the consumer on it
    delivered = eventually(
        lambda: running_stack.delivered_with(published.dedupe_key), what="the email in the Maildir"
    )

    # Then exactly one email was stored, carrying the contract's headers
    assert len(delivered) == 1
    email = delivered[0]
    assert email["Message-ID"] == message_id_for(published.dedupe_key)
    assert email["X-Job-Id"] == published.job_id
    assert recipient in email["Delivered-To"]
    # And the worker deleted the handled message from the queue
    email_queue = running_stack.stack_json()["queues"]["email"]
    eventually(lambda: queue_is_empty(running_stack, email_queue), what="the email queue to empty")
    # And the handler's log lines came through as its own Powertools JSON, without the address
    handler_lines = running_stack.handler_lines("email_worker")
    assert any("function_request_id" in line and "level" in line for line in handler_lines)
    assert recipient not in running_stack.output()


def test_a_transient_smtp_failure_is_left_on_the_queue_and_delivered_on_the_next_receive(
    running_stack: RunningStack,
):
    # Given a job whose first SMTP attempt the sink answers 451
    published = publish(running_stack, booking_confirmed("guest+transient1@example.test"))
    message_id = message_id_for(published.dedupe_key)

    # When the consumer reports that record as failed and the worker leaves it for redelivery
    eventually(
        lambda: running_stack.delivered_with(published.dedupe_key),
        timeout=30,
        what="the email after its retry",
    )

    # Then the sink saw one refused attempt and then one stored delivery
    codes = [entry["code"] for entry in running_stack.mail_log() if entry["message_id"] == message_id]
    assert codes == [451, 250]


def test_a_killed_worker_is_restarted_and_stack_json_shows_its_new_pid(running_stack: RunningStack):
    # Given the email worker's pid in stack.json
    old_pid = running_stack.stack_json()["processes"]["email_worker"]

    # When it is killed
    os.kill(old_pid, signal.SIGKILL)
    killed_at = time.monotonic()

    # Then stack.json soon names a new, live worker
    def restarted_pid() -> int | None:
        pid: int = running_stack.stack_json()["processes"]["email_worker"]
        return pid if pid != old_pid else None

    new_pid = eventually(restarted_pid, what="stack.json to show a restarted email_worker")
    assert pid_alive(new_pid)
    assert not pid_alive(old_pid)
    # And the new worker delivers (once the dead worker's long poll has expired in moto, which
    # would otherwise take the message into the dead connection, as SQS itself may)
    time.sleep(max(0.0, killed_at + LONG_POLL_SECONDS - time.monotonic()))
    published = publish(running_stack, booking_confirmed(f"guest-{uuid.uuid4().hex[:8]}@example.test"))
    eventually(lambda: running_stack.delivered_with(published.dedupe_key), what="delivery by the new worker")


def test_a_permanent_refusal_reaches_the_dlq_with_its_reason(running_stack: RunningStack):
    # Given a job whose recipient the sink always refuses (550)
    published = publish(running_stack, booking_confirmed("guest+permanent@example.test"))
    dlq_url = running_stack.stack_json()["queues"]["email_dlq"]

    def dead_lettered() -> dict[str, Any] | None:
        for message in (
            running_stack.sqs()
            .receive_message(
                QueueUrl=dlq_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], VisibilityTimeout=0
            )
            .get("Messages", [])
        ):
            if json.loads(message["Body"])["job_id"] == published.job_id:
                return message
        return None

    # Then it is dead-lettered at once, saying why, with no address in its attributes
    message = eventually(dead_lettered, timeout=30, what="the refused email in the DLQ")
    attributes = {name: value["StringValue"] for name, value in message["MessageAttributes"].items()}
    assert attributes["failure_reason"] == "provider_rejected"
    assert "guest" not in json.dumps(attributes)
    assert running_stack.delivered_with(published.dedupe_key) == []


def test_a_delay_longer_than_a_hop_is_delivered_after_it_and_not_before(running_stack: RunningStack):
    # Given an email delayed 12 s, when the local stage's SQS delay hops are at most 5 s
    request = {**booking_confirmed("guest@example.test"), "delay_seconds": 12}
    published = publish(running_stack, request)
    # Then it lands, once, and only after its delivery time
    [delivered] = eventually(
        lambda: running_stack.delivered_with(published.dedupe_key), timeout=40, what="the delayed email"
    )
    logged = [e for e in running_stack.mail_log() if e["dedupe_key"] == published.dedupe_key]
    assert [e["code"] for e in logged] == [250]
    received_at = logged[0]["received_at"].replace("Z", "+00:00")
    assert datetime.fromisoformat(received_at) >= published.deliver_at
    assert delivered["X-Dedupe-Key"] == published.dedupe_key
