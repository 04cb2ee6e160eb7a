"""`make run`'s drift notifications (docs/reference/notifications.md#outbox-and-pipe): an outbox item in the
reservations table reaches the webhook sink once, signed, through the stream worker (the pipe), the
notifications queue and the real notifier; nothing else the table's stream carries does. (The drift a confirm
meets, from the API down to the webhook: ``test_drift_flows.py``.)"""

from __future__ import annotations

import json
import os
import signal
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from .harness import RunningStack, eventually, pid_alive

pytestmark = pytest.mark.e2e

# Past the local visibility timeouts and hops: long enough for a second delivery to show up.
DELIVERY_TIMEOUT_SECONDS = 30.0


def rfc3339(when: datetime) -> str:
    return when.isoformat(timespec="seconds").replace("+00:00", "Z")


def drift_event(venue_id: str = "casa") -> dict[str, Any]:
    """A drift event body (docs/reference/notifications.md#event-body): ids and hashes only."""
    return {
        "type": "policy_drift.recovered",
        "event_id": str(uuid.uuid4()),
        "occurred_at": rfc3339(datetime.now(UTC)),
        "venue_id": venue_id,
        "original_hold_id": f"hld_{uuid.uuid4().hex}",
        "hold_id": f"hld_{uuid.uuid4().hex}",
        "original_policy_hash": "a" * 64,
        "policy_hash": "b" * 64,
        "policy_version": 2,
        "attempts": 2,
    }


def put_item(stack: RunningStack, item: dict[str, Any]) -> None:
    table = stack.stack_json()["tables"]["reservations"]
    stack.dynamodb().put_item(TableName=table, Item=item)


def put_outbox_item(stack: RunningStack, event: dict[str, Any]) -> str:
    """The outbox item the reservations API writes with a confirm's outcome; its body as stored."""
    body = json.dumps(event, separators=(",", ":"))
    expires_at = int((datetime.now(UTC) + timedelta(days=7)).timestamp())
    put_item(
        stack,
        {
            "pk": {"S": f"OUTBOX#{event['event_id']}"},
            "sk": {"S": "EVENT"},
            "body": {"S": body},
            "event_type": {"S": event["type"]},
            "expires_at": {"N": str(expires_at)},
        },
    )
    return body


def webhooks_for(stack: RunningStack, event_id: str) -> list[dict[str, Any]]:
    return [line for line in stack.webhooks() if line["headers"].get("webhook-id") == f"msg_{event_id}"]


def delivered_once(stack: RunningStack, event_id: str) -> dict[str, Any]:
    """The one webhook of ``event_id``, once the notifications queue has settled."""
    eventually(lambda: webhooks_for(stack, event_id), timeout=DELIVERY_TIMEOUT_SECONDS, what="the webhook")
    wait_until_settled(stack)
    deliveries = webhooks_for(stack, event_id)
    assert len(deliveries) == 1, deliveries
    return deliveries[0]


def wait_until_settled(stack: RunningStack) -> None:
    """Until the notifications queue and its DLQ are empty: nothing is left to be delivered."""
    eventually(lambda: notifications_settled(stack), timeout=DELIVERY_TIMEOUT_SECONDS, what="the queues")


def notifications_settled(stack: RunningStack) -> bool:
    queues = stack.stack_json()["queues"]
    sqs = stack.sqs()
    counts = [
        sqs.get_queue_attributes(
            QueueUrl=queues[name],
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        for name in ("notifications", "notifications_dlq")
    ]
    return all(value == "0" for attributes in counts for value in attributes.values())


def test_stack_json_says_where_the_webhooks_go(running_stack: RunningStack) -> None:
    info = running_stack.stack_json()

    # The notifier posts to this run's sink (LOCAL_WEBHOOK_PORT, not the template's 8025), on the
    # path the template gives it
    url = urlsplit(info["webhook_url"])
    assert url.netloc == f"127.0.0.1:{running_stack.variables['LOCAL_WEBHOOK_PORT']}"
    assert url.path == "/webhooks/policy-drift"
    assert info["webhook_secret"].startswith("whsec_")
    assert info["webhooks_file"] == str(running_stack.local_dir / "webhooks.jsonl")
    assert set(info["queues"]) >= {"notifications", "notifications_dlq"}
    assert {"webhook_sink", "notifications_worker", "notifications_stream"} <= set(info["processes"])
    assert all(pid_alive(info["processes"][name]) for name in ("webhook_sink", "notifications_stream"))


def test_an_outbox_item_reaches_the_webhook_once_signed_with_the_stacks_secret(
    running_stack: RunningStack,
) -> None:
    # Given a drift event written to the reservations table as an outbox item
    event = drift_event()
    body = put_outbox_item(running_stack, event)

    # When the stream worker, the notifications queue and the notifier have carried it
    delivery = delivered_once(running_stack, event["event_id"])

    # Then the sink got it on the configured path, exactly as stored, as JSON
    info = running_stack.stack_json()
    assert delivery["path"] == urlsplit(info["webhook_url"]).path
    assert delivery["body"] == body
    assert delivery["headers"]["content-type"].startswith("application/json")
    # And signed as Standard Webhooks with the secret stack.json gives
    verified = Webhook(info["webhook_secret"]).verify(delivery["body"], delivery["headers"])
    assert verified == event
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB").verify(delivery["body"], delivery["headers"])


def test_what_is_not_a_new_outbox_item_reaches_no_webhook(running_stack: RunningStack) -> None:
    # Given a hold written to the reservations table, an outbox-looking key that is not one, and
    # an outbox item rewritten in place (a MODIFY, not a new event)...
    hold_id = f"hld_{uuid.uuid4().hex}"
    put_item(running_stack, {"pk": {"S": f"HOLD#{hold_id}"}, "sk": {"S": "HOLD"}, "body": {"S": hold_id}})
    put_item(
        running_stack,
        {"pk": {"S": f"VENUE#OUTBOX#{hold_id}"}, "sk": {"S": "EVENT"}, "body": {"S": hold_id}},
    )
    rewritten = drift_event()
    put_outbox_item(running_stack, rewritten)
    delivered_once(running_stack, rewritten["event_id"])
    put_outbox_item(running_stack, {**rewritten, "attempts": 3})
    # ... and then an outbox item, which the stream carries after all of them
    sentinel = drift_event()
    put_outbox_item(running_stack, sentinel)

    # When the last one has been delivered
    delivered_once(running_stack, sentinel["event_id"])

    # Then none of the others produced a webhook (the rewrite left its event's one delivery)
    assert not [line for line in running_stack.webhooks() if hold_id in json.dumps(line)]
    assert len(webhooks_for(running_stack, rewritten["event_id"])) == 1


def test_a_killed_stream_worker_resumes_where_it_was_losing_and_repeating_nothing(
    running_stack: RunningStack,
) -> None:
    # Given events the stream worker has already forwarded
    before = [drift_event() for _ in range(3)]
    for event in before:
        put_outbox_item(running_stack, event)
    for event in before:
        delivered_once(running_stack, event["event_id"])
    old_pid = running_stack.stack_json()["processes"]["notifications_stream"]

    # When it is killed, and more events are committed while it is down
    os.kill(old_pid, signal.SIGKILL)
    after = [drift_event() for _ in range(3)]
    for event in after:
        put_outbox_item(running_stack, event)

    # Then the stack restarts it
    def restarted() -> int | None:
        pid: int = running_stack.stack_json()["processes"]["notifications_stream"]
        return pid if pid != old_pid and pid_alive(pid) else None

    eventually(restarted, what="stack.json to show a restarted notifications_stream")
    # And every event written while it was down is delivered, once
    for event in after:
        delivered_once(running_stack, event["event_id"])
    # And none it had forwarded before is sent again
    for event in before:
        assert len(webhooks_for(running_stack, event["event_id"])) == 1


def test_a_webhook_outage_simulated_with_the_down_file_delays_the_event_and_loses_nothing(
    running_stack: RunningStack,
) -> None:
    # Given the receiver taken down as the runbook says: touch $LOCAL_DIR/webhook-down
    down = running_stack.local_dir / "webhook-down"
    down.touch()
    try:
        # When a drift event is committed
        event = drift_event()
        put_outbox_item(running_stack, event)
        # Then the notifier's webhook is answered 503 and lands nowhere
        refused = f"-> 503 webhook-id=msg_{event['event_id']}"
        eventually(lambda: refused in running_stack.output(), what="the sink's 503")
        assert webhooks_for(running_stack, event["event_id"]) == []
    finally:
        down.unlink()
    # And once the receiver is back, the queue's retry (one visibility timeout later) delivers it once
    queue = running_stack.stack_json()["queues"]["notifications"]
    attributes = running_stack.sqs().get_queue_attributes(QueueUrl=queue, AttributeNames=["All"])
    eventually(
        lambda: webhooks_for(running_stack, event["event_id"]),
        timeout=DELIVERY_TIMEOUT_SECONDS + int(attributes["Attributes"]["VisibilityTimeout"]),
        what="the retried webhook",
    )
    delivered_once(running_stack, event["event_id"])
