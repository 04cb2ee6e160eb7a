"""The real drift notifier handler (Powertools batch, logger, metrics) against moto, with the
webhook secret in Secrets Manager and a real webhook receiver on loopback
(docs/reference/notifications.md#webhook-delivery).

Events travel as in AWS: published to the notifications queue, received with their receive
count, handed to the handler as the SQS event source mapping hands them, and deleted unless the
handler reports them failed (then they come back, as after the visibility timeout).
"""

from __future__ import annotations

import contextlib
import io
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from booking_durability import wiring
from booking_durability.emails.models import EMAIL_JOB, AdminDriftEmailJob
from devstack.worker import delete_records, records_to_delete, sqs_event
from tests.builders import GUEST_EMAIL, GUEST_NAME, PII, LambdaContext
from tests.integration.conftest import (
    REGION,
    Resources,
    attributes,
    emf_blobs,
    import_handler,
    template_queue_url,
)
from tests.unit.notifications.builders import (
    ADMIN_EMAIL,
    OTHER_SECRET,
    SECRET,
    as_body,
    drift_event,
    unrecovered_event,
)

# A token in the URL's path, as some receivers issue: it must never reach a log line or a trace.
HOOK_PATH = "/hooks/drift/tok_url_token_never_logged"
WEBHOOK_VARIABLES = ("WEBHOOK_URL", "WEBHOOK_SECRET", "WEBHOOK_PREVIOUS_SECRET", "WEBHOOK_SECRET_ARN")


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A webhook receiver on loopback answering from a script of statuses (then 200)."""

    script: list[int] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    delay_seconds: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def answer(self, request: Received) -> int:
        with self.lock:
            self.received.append(request)
            return self.script.pop(0) if self.script else 200


def _handler_class(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            headers = {name.lower(): value for name, value in self.headers.items()}
            status = receiver.answer(Received(self.path, headers, body))
            time.sleep(receiver.delay_seconds)
            # A client that timed out has gone: answering it fails, as it would for a real receiver.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            return

    return Handler


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_class(state))
    state.url = f"http://127.0.0.1:{server.server_address[1]}{HOOK_PATH}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


@dataclass
class Queues:
    """The template's notifications queue and its DLQ, and its email queue."""

    resources: Resources
    notifications: str
    notifications_arn: str
    dlq: str
    email: str
    #: The notifications queue's ``maxReceiveCount``
    #: (docs/reference/notifications.md#retries-and-dead-letters: the notifier's ``MAX_RECEIVES``).
    max_receives: int

    @property
    def sqs(self) -> Any:
        return self.resources.sqs

    def publish(self, body: str, attributes: dict[str, str] | None = None) -> None:
        """As EventBridge Pipes (or the local stream worker) publishes the outbox item's body;
        ``attributes`` as a redrive carries them along (String values)."""
        self.sqs.send_message(
            QueueUrl=self.notifications,
            MessageBody=body,
            MessageAttributes={
                name: {"DataType": "String", "StringValue": value}
                for name, value in (attributes or {}).items()
            },
        )

    def drain(self, url: str) -> list[dict[str, Any]]:
        return self.resources.drain(url)

    def deliver_batch(self, handler: Any) -> dict[str, Any]:
        """One poll of the event source mapping (report_batch_item_failures): invoke, delete
        what succeeded, and make the failures visible again at once (their visibility timeout)."""
        messages = self.sqs.receive_message(
            QueueUrl=self.notifications,
            MaxNumberOfMessages=10,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        assert messages, "nothing to deliver"
        event = sqs_event(messages, queue_arn=self.notifications_arn, region=REGION)
        response: dict[str, Any] = handler(event, LambdaContext(function_name="notifier"))
        done = records_to_delete(event["Records"], response, report_batch_item_failures=True)
        delete_records(self.sqs, self.notifications, done)
        for record in event["Records"]:
            if record not in done:
                self.sqs.change_message_visibility(
                    QueueUrl=self.notifications, ReceiptHandle=record["receiptHandle"], VisibilityTimeout=0
                )
        return response


@pytest.fixture
def queues(resources: Resources, local_template: dict[str, Any]) -> Queues:
    notifications = template_queue_url(resources, local_template, "NotificationsQueueUrl")
    settings = resources.sqs.get_queue_attributes(
        QueueUrl=notifications, AttributeNames=["QueueArn", "RedrivePolicy"]
    )["Attributes"]
    return Queues(
        resources,
        notifications=notifications,
        notifications_arn=settings["QueueArn"],
        dlq=template_queue_url(resources, local_template, "NotificationsDlqUrl"),
        email=resources.queue_url,
        max_receives=int(json.loads(settings["RedrivePolicy"])["maxReceiveCount"]),
    )


def load_handler(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> Any:
    for name in (*WEBHOOK_VARIABLES, "ADMIN_EMAIL", "EMAIL_QUEUE_URL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in {"POWERTOOLS_SERVICE_NAME": "notifier-test", **env}.items():
        monkeypatch.setenv(name, value)
    wiring.reset()
    parameters.clear_caches()
    return import_handler("notifier")


def store_secret(value: str) -> str:
    client = boto3.client("secretsmanager", region_name=REGION)
    return str(client.create_secret(Name="booking-durability/drift-webhook", SecretString=value)["ARN"])


def put_secret(arn: str, value: dict[str, str]) -> None:
    """An operator's ``put-secret-value``, and the Powertools cache expiring (5 minutes in AWS)."""
    boto3.client("secretsmanager", region_name=REGION).put_secret_value(
        SecretId=arn, SecretString=json.dumps(value)
    )
    parameters.clear_caches()


@pytest.fixture
def webhook_secret_arn(receiver: Receiver) -> str:
    """The webhook's secret as operators put it: the URL and the signing key, one JSON object."""
    return store_secret(json.dumps({"url": receiver.url, "secret": SECRET}))


@pytest.fixture
def webhook_handler(
    queues: Queues, webhook_secret_arn: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Any]:
    """The notifier as deployed in AWS: the webhook's URL and key in Secrets Manager, by ARN only."""
    yield load_handler(
        monkeypatch,
        {
            "NOTIFICATIONS_DLQ_URL": queues.dlq,
            "MAX_RECEIVES": str(queues.max_receives),
            "WEBHOOK_SECRET_ARN": webhook_secret_arn,
            "WEBHOOK_TIMEOUT_SECONDS": "0.5",
        },
    )
    wiring.reset()


@pytest.fixture
def email_handler(queues: Queues, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The notifier with no webhook configured."""
    yield load_handler(
        monkeypatch,
        {
            "NOTIFICATIONS_DLQ_URL": queues.dlq,
            "ADMIN_EMAIL": ADMIN_EMAIL,
            "EMAIL_QUEUE_URL": queues.email,
            "MAX_DELAY_HOP_SECONDS": "5",
        },
    )
    wiring.reset()


def letter_attributes(dead: dict[str, Any]) -> dict[str, str]:
    """A dead letter's attributes, its ``first_dead_lettered_at`` checked (an RFC 3339 UTC instant
    of this test's run: the letter's first time) and left out."""
    values = attributes(dead)
    written = values.pop("first_dead_lettered_at")
    assert written.endswith("Z")
    first = datetime.fromisoformat(written)
    assert datetime.now(UTC) - timedelta(minutes=5) < first <= datetime.now(UTC)
    return values


def verified(received: Received) -> Any:
    """What a Standard Webhooks receiver makes of the request (raises when the signature is bad)."""
    return Webhook(SECRET).verify(received.body, received.headers)


def test_a_drift_event_is_posted_signed_to_the_webhook(
    webhook_handler: Any, queues: Queues, receiver: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a drift event on the notifications queue
    event = drift_event()
    queues.publish(as_body(event))
    # When the notifier is invoked with it
    assert queues.deliver_batch(webhook_handler) == {"batchItemFailures": []}
    # Then the receiver got the exact body, signed so that its library accepts it
    [received] = receiver.received
    assert received.path == HOOK_PATH
    assert received.body == as_body(event).encode()
    assert received.headers["content-type"] == "application/json"
    assert received.headers["webhook-id"] == f"msg_{event['event_id']}"
    assert verified(received) == event
    # And nothing is left behind, and the send is counted by channel
    assert queues.drain(queues.notifications) == []
    assert queues.drain(queues.dlq) == []
    [sent] = [blob for blob in emf_blobs(capsys.readouterr().out) if "AdminNotificationSent" in blob]
    assert sent["channel"] == "webhook"


def test_a_503_is_retried_by_the_queue_with_the_same_id_and_a_fresh_valid_signature(
    webhook_handler: Any, queues: Queues, receiver: Receiver
) -> None:
    # Given a receiver that is down for the first attempt
    receiver.script = [503]
    event = unrecovered_event()
    queues.publish(as_body(event))
    # When the event is delivered, fails, and comes back
    first = queues.deliver_batch(webhook_handler)
    assert len(first["batchItemFailures"]) == 1
    assert queues.deliver_batch(webhook_handler) == {"batchItemFailures": []}
    # Then both requests carry the same id, and each is validly signed for its own timestamp
    assert [r.headers["webhook-id"] for r in receiver.received] == [f"msg_{event['event_id']}"] * 2
    assert all(verified(r) == event for r in receiver.received)
    assert queues.drain(queues.dlq) == []
    assert queues.drain(queues.notifications) == []


def test_after_five_failed_receives_the_event_is_dead_lettered_as_unreachable(
    webhook_handler: Any, queues: Queues, receiver: Receiver
) -> None:
    assert queues.max_receives == 5  # as the template has it
    # Given a receiver answering 503, then too late (past the 0.5 s timeout), then 500, 502, 504
    receiver.script = [503, 200, 500, 502, 504]
    event = drift_event()
    queues.publish(as_body(event))
    # When the event is received five times
    for receive in range(1, queues.max_receives + 1):
        receiver.delay_seconds = 1.0 if receive == 2 else 0.0
        response = queues.deliver_batch(webhook_handler)
        # Then the first four fail the record, the fifth dead-letters it (the record is done)
        assert len(response["batchItemFailures"]) == (1 if receive < queues.max_receives else 0)
    assert len(receiver.received) == queues.max_receives
    [dead] = queues.drain(queues.dlq)
    assert dead["Body"] == as_body(event)
    assert letter_attributes(dead) == {"failure_reason": "webhook_unreachable", "attempts": "5"}
    assert queues.drain(queues.notifications) == []


def test_a_400_is_dead_lettered_at_once_as_rejected(
    webhook_handler: Any, queues: Queues, receiver: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    receiver.script = [400]
    queues.publish(as_body(drift_event()))
    assert queues.deliver_batch(webhook_handler) == {"batchItemFailures": []}
    assert len(receiver.received) == 1
    [dead] = queues.drain(queues.dlq)
    assert letter_attributes(dead) == {"failure_reason": "webhook_rejected", "attempts": "1"}
    [failed] = [b for b in emf_blobs(capsys.readouterr().out) if "AdminNotificationFailed" in b]
    assert failed["failure_reason"] == "webhook_rejected"


def test_a_body_that_is_not_a_drift_event_is_dead_lettered_as_invalid_and_never_sent(
    webhook_handler: Any, queues: Queues, receiver: Receiver
) -> None:
    queues.publish('{"type": "policy_drift.recovered", "event_id": "nope"}')
    assert queues.deliver_batch(webhook_handler) == {"batchItemFailures": []}
    assert receiver.received == []
    [dead] = queues.drain(queues.dlq)
    assert dead["Body"] == '{"type": "policy_drift.recovered", "event_id": "nope"}'
    assert letter_attributes(dead) == {"failure_reason": "invalid_event", "attempts": "0"}


def test_one_bad_record_does_not_redeliver_the_others(
    webhook_handler: Any, queues: Queues, receiver: Receiver
) -> None:
    # Given three events of which the receiver refuses to take the second for now
    events = [drift_event() for _ in range(3)]
    for event in events:
        queues.publish(as_body(event))
    receiver.script = [200, 503, 200]
    # When they arrive in one batch
    response = queues.deliver_batch(webhook_handler)
    # Then only the one that failed comes back
    assert len(response["batchItemFailures"]) == 1
    assert queues.deliver_batch(webhook_handler) == {"batchItemFailures": []}
    delivered = {r.headers["webhook-id"] for r in receiver.received}
    assert delivered == {f"msg_{event['event_id']}" for event in events}
    assert len(receiver.received) == 4


def test_an_unreachable_secret_leaves_the_event_on_the_queue(
    queues: Queues, receiver: Receiver, monkeypatch: pytest.MonkeyPatch, log_lines: io.StringIO
) -> None:
    # Given a secret stored as a bare string rather than the JSON object the notifier reads
    bare = store_secret(SECRET)
    handler = load_handler(
        monkeypatch,
        {"NOTIFICATIONS_DLQ_URL": queues.dlq, "WEBHOOK_SECRET_ARN": bare},
    )
    queues.publish(as_body(drift_event()))
    # When the event arrives, it is not sent, not dead-lettered, and left for the queue
    assert len(queues.deliver_batch(handler)["batchItemFailures"]) == 1
    assert receiver.received == []
    assert queues.drain(queues.dlq) == []
    assert "WEBHOOK_SECRET_UNAVAILABLE" in log_lines.getvalue()
    assert SECRET[len("whsec_") :] not in log_lines.getvalue()


def test_a_rotation_signs_with_both_keys_until_the_previous_one_is_dropped(
    webhook_handler: Any, webhook_secret_arn: str, queues: Queues, receiver: Receiver
) -> None:
    # Given events delivered before, during and after a rotation of the signing key, operators
    # putting each value as the runbook says (the new key, the old one as previous, then alone)
    new_key = OTHER_SECRET
    for value in (
        {"url": receiver.url, "secret": SECRET},
        {"url": receiver.url, "secret": new_key, "previous": SECRET},
        {"url": receiver.url, "secret": new_key},
    ):
        put_secret(webhook_secret_arn, value)
        queues.publish(as_body(drift_event()))
        assert queues.deliver_batch(webhook_handler) == {"batchItemFailures": []}
    before, during, after = receiver.received
    # Then a receiver holding either key accepts what was sent during the overlap
    assert Webhook(SECRET).verify(during.body, during.headers)
    assert Webhook(new_key).verify(during.body, during.headers)
    assert len(during.headers["webhook-signature"].split(" ")) == 2
    # And before and after it, exactly the key of the time
    assert Webhook(SECRET).verify(before.body, before.headers)
    assert Webhook(new_key).verify(after.body, after.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(after.body, after.headers)
    assert queues.drain(queues.dlq) == []


def test_a_url_changed_in_the_secret_is_where_the_next_event_goes(
    webhook_handler: Any, webhook_secret_arn: str, queues: Queues, receiver: Receiver
) -> None:
    moved = receiver.url.replace(HOOK_PATH, "/hooks/moved")
    put_secret(webhook_secret_arn, {"url": moved, "secret": SECRET})
    queues.publish(as_body(drift_event()))
    assert queues.deliver_batch(webhook_handler) == {"batchItemFailures": []}
    assert [r.path for r in receiver.received] == ["/hooks/moved"]


@pytest.mark.parametrize(
    "malformed",
    [
        lambda url: {"secret": SECRET},  # no url
        lambda url: {"url": url.replace("http://127.0.0.1", "http://hooks.example.test"), "secret": SECRET},
        lambda url: {"url": url, "secret": SECRET, "previous": "tok_url_token_never_logged"},
    ],
    ids=["no-url", "http-off-loopback", "previous-not-whsec"],
)
def test_a_malformed_secret_leaves_the_event_on_the_queue_and_says_so_without_its_values(
    webhook_handler: Any,
    webhook_secret_arn: str,
    queues: Queues,
    receiver: Receiver,
    log_lines: io.StringIO,
    malformed: Callable[[str], dict[str, str]],
) -> None:
    value = malformed(receiver.url)
    put_secret(webhook_secret_arn, value)
    queues.publish(as_body(drift_event()))
    assert len(queues.deliver_batch(webhook_handler)["batchItemFailures"]) == 1
    assert receiver.received == []
    assert queues.drain(queues.dlq) == []
    logged = log_lines.getvalue()
    assert "WEBHOOK_SECRET_INVALID" in logged
    assert "tok_url_token_never_logged" not in logged
    assert SECRET[len("whsec_") :] not in logged


def test_without_a_webhook_the_admin_gets_an_admin_policy_drift_email_job(
    email_handler: Any, queues: Queues, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a drift event and no webhook configured
    event = unrecovered_event()
    queues.publish(as_body(event))
    # When the notifier is invoked with it
    assert queues.deliver_batch(email_handler) == {"batchItemFailures": []}
    # Then the email queue holds one admin job, keyed by the event, that the email models accept
    [published] = queues.drain(queues.email)
    job = EMAIL_JOB.validate_json(published["Body"])
    assert isinstance(job, AdminDriftEmailJob)
    assert job.dedupe_key == f"{event['event_id']}#admin_policy_drift#0"
    assert job.recipient.email == ADMIN_EMAIL
    assert job.locale == "en"
    assert job.data.model_dump(mode="json", exclude_none=True) == event
    assert attributes(published) == {"email_type": "admin_policy_drift", "schema": "booking-email/v1"}
    [sent] = [blob for blob in emf_blobs(capsys.readouterr().out) if "AdminNotificationSent" in blob]
    assert sent["channel"] == "email"


def test_secrets_signatures_and_the_url_token_never_reach_the_logs(
    webhook_handler: Any,
    queues: Queues,
    receiver: Receiver,
    log_lines: io.StringIO,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given events down every path: delivered, retried, refused, invalid
    receiver.script = [200, 503, 400]
    for event in (drift_event(), drift_event(), drift_event()):
        queues.publish(as_body(event))
    queues.publish("{not json")
    # When they are all handled (the retried one twice)
    queues.deliver_batch(webhook_handler)
    queues.deliver_batch(webhook_handler)
    # Then the logs (at DEBUG) and the metrics carry the events' ids, and none of what is secret
    logged = log_lines.getvalue() + capsys.readouterr().out
    signatures = [r.headers["webhook-signature"] for r in receiver.received]
    assert len(signatures) == 4
    for secret in (SECRET, SECRET[len("whsec_") :], "tok_url_token_never_logged", *signatures):
        assert secret not in logged
    for secret in (s.split(",", 1)[1] for s in signatures):
        assert secret not in logged
    correlation_ids = {
        json.loads(line).get("correlation_id") for line in log_lines.getvalue().splitlines() if line
    }
    delivered_ids = {r.headers["webhook-id"].removeprefix("msg_") for r in receiver.received}
    assert delivered_ids <= correlation_ids


def test_neither_guest_data_nor_the_admin_address_reaches_logs_metrics_or_dead_letters(
    email_handler: Any, queues: Queues, log_lines: io.StringIO, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a drift event for the admin's email, and two bodies carrying a guest's address and name
    queues.publish(as_body(unrecovered_event()))
    queues.publish(as_body(drift_event(guest_email=GUEST_EMAIL)))
    queues.publish(json.dumps({"type": "policy_drift.recovered", "guest": {"name": GUEST_NAME}, "Garcia": 1}))
    # When they are handled: one emailed to the admin, two dead-lettered as invalid
    assert queues.deliver_batch(email_handler) == {"batchItemFailures": []}
    logged = log_lines.getvalue() + capsys.readouterr().out
    assert "admin notified" in logged
    assert logged.count("drift event failed validation") == 2
    dead = queues.drain(queues.dlq)
    assert [letter_attributes(d) for d in dead] == [{"failure_reason": "invalid_event", "attempts": "0"}] * 2
    # Then none of it is in the logs (at DEBUG), the metrics or the dead letters' attributes
    for planted in (*PII, ADMIN_EMAIL, "Garcia"):
        assert planted not in logged


def test_a_redriven_event_dead_lettered_again_keeps_when_it_was_first_dead_lettered(
    webhook_handler: Any, queues: Queues, receiver: Receiver
) -> None:
    # Given events redriven from the DLQ with what their dead letters said
    receiver.script = [400, 400, 400]
    first = "2026-11-20T08:15:00Z"
    queues.publish(as_body(drift_event()), {"first_dead_lettered_at": "2026-11-20T09:15:00+01:00"})
    queues.publish(as_body(drift_event()), {"first_dead_lettered_at": "yesterday"})
    queues.publish(as_body(drift_event()), {"first_dead_lettered_at": "2099-12-31T00:00:00Z"})
    # When the receiver refuses them again
    assert queues.deliver_batch(webhook_handler) == {"batchItemFailures": []}
    dead = queues.drain(queues.dlq)
    # Then the sound instant is kept (in UTC); one unparsable, or later than now, becomes now
    kept = sorted(attributes(d)["first_dead_lettered_at"] for d in dead)
    assert kept[0] == first
    assert [letter_attributes(d) for d in dead if attributes(d)["first_dead_lettered_at"] != first] == [
        {"failure_reason": "webhook_rejected", "attempts": "1"}
    ] * 2


def test_attributes_a_message_arrives_with_reach_no_log_line_or_dead_letter(
    webhook_handler: Any,
    queues: Queues,
    receiver: Receiver,
    log_lines: io.StringIO,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given events whose attributes carry a guest's data, one of them not even a drift event
    planted = {
        "attempts": "5551234567",
        "failure_reason": GUEST_EMAIL,
        "email_type": GUEST_NAME,
        "first_dead_lettered_at": GUEST_EMAIL,
    }
    receiver.script = [400]
    queues.publish(as_body(drift_event()), planted)
    queues.publish("{not json", planted)
    # When both are dead-lettered
    assert queues.deliver_batch(webhook_handler) == {"batchItemFailures": []}
    dead = queues.drain(queues.dlq)
    # Then their letters carry only what the notifier knows, and the logs none of what came in
    assert sorted(letter_attributes(d)["failure_reason"] for d in dead) == [
        "invalid_event",
        "webhook_rejected",
    ]
    surfaces = log_lines.getvalue() + capsys.readouterr().out + json.dumps([attributes(d) for d in dead])
    assert "drift event dead-lettered" in surfaces
    for value in (*PII, "5551234567"):
        assert value not in surfaces
