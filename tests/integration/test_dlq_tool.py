"""The DLQ tool (``scripts/dlq.py``) through its own ``main`` against moto: the template's queues,
dead letters as the consumer and the notifier leave them, the real consumer for the dedupe.

Every test plants a guest's address and name in the bodies and checks that nothing the tool
prints carries them.
"""

from __future__ import annotations

import json
import runpy
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from booking_durability.adapters.dead_letters import QueueUnavailable, SqsDeadLetterQueue, locate_local
from booking_durability.adapters.email_queue import EmailQueue
from booking_durability.emails.delivery import IncomingMessage, Outcome
from booking_durability.emails.ports import OutgoingMessage
from booking_durability.emails.providers.base import PermanentProviderError
from booking_durability.observability import metrics
from booking_durability.operations.dead_letters import DeadLetter, QueueKind
from booking_durability.operations.redrive import MoveState, MoveStatus, MoveTaskUnsupported
from tests.builders import GUEST_EMAIL, PII, job
from tests.integration.conftest import (
    REGION,
    ROOT,
    Clock,
    MotoServer,
    Resources,
    ScriptedProvider,
    attributes,
    make_delivery,
    template_queue_url,
)

EMAIL = {"schema": "booking-email/v1"}
#: Attribute values a publisher could have set that look like identifiers: a name, a phone number.
NAME_LIKE, PHONE_LIKE = "AnaPerez", "34600111222"


@dataclass(frozen=True)
class Ran:
    code: int | str | None
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        return self.out.splitlines()


@pytest.fixture(scope="module")
def dlq_main() -> Callable[[list[str]], int]:
    main: Callable[[list[str]], int] = runpy.run_path(str(ROOT / "scripts" / "dlq.py"))["main"]
    return main


@dataclass
class Queues:
    email: str
    email_dlq: str
    notifications: str
    notifications_dlq: str
    sqs: Any

    def plant(self, url: str, body: str, attributes: dict[str, str | int]) -> str:
        """A dead letter as the consumer and the notifier send one (the service's own sender)."""
        return EmailQueue(url, self.sqs).send(OutgoingMessage(body, attributes))

    def peek(self, url: str) -> list[dict[str, Any]]:
        """Every visible message of ``url``, left on it (made visible again)."""
        messages = _receive_all(self.sqs, url)
        for message in messages:
            self.sqs.change_message_visibility(
                QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
            )
        return messages


@pytest.fixture
def queues(resources: Resources, local_template: dict[str, Any]) -> Queues:
    return Queues(
        email=resources.queue_url,
        email_dlq=resources.dlq_url,
        notifications=template_queue_url(resources, local_template, "NotificationsQueueUrl"),
        notifications_dlq=template_queue_url(resources, local_template, "NotificationsDlqUrl"),
        sqs=resources.sqs,
    )


@pytest.fixture
def dlq(
    dlq_main: Callable[[list[str]], int], queues: Queues, capsys: pytest.CaptureFixture[str]
) -> Callable[..., Ran]:
    """Runs the tool against the test's queues (``--aws`` with their URLs, in moto)."""

    def run(command: str, *args: str, queue: str = "email") -> Ran:
        source, dead = (
            (queues.email, queues.email_dlq)
            if queue == "email"
            else (queues.notifications, queues.notifications_dlq)
        )
        argv = [command, "--queue", queue, "--aws", "--queue-url", source, "--dlq-url", dead]
        argv += ["--wait-seconds", "0", *args]
        capsys.readouterr()
        try:
            code: int | str | None = dlq_main(argv)
        except SystemExit as exc:  # argparse's usage errors
            code = exc.code
        captured = capsys.readouterr()
        ran = Ran(code, captured.out, captured.err)
        for planted in PII:
            assert planted not in ran.out + ran.err
        return ran

    return run


def _receive_all(sqs: Any, url: str) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    while batch := sqs.receive_message(
        QueueUrl=url,
        MaxNumberOfMessages=10,
        VisibilityTimeout=30,
        MessageAttributeNames=["All"],
        MessageSystemAttributeNames=["All"],
    ).get("Messages", []):
        messages.extend(batch)
    return messages


def email_letter(queues: Queues, reason: str | None, email_type: str | None, **job_fields: Any) -> str:
    attrs: dict[str, str | int] = {**EMAIL, "attempts": 1}
    if reason is not None:
        attrs["failure_reason"] = reason
    if email_type is not None:
        attrs["email_type"] = email_type
    fields: dict[str, Any] = {**job_fields, **({"email_type": email_type} if email_type else {})}
    body = json.dumps(job(**fields))
    return queues.plant(queues.email_dlq, body, attrs)


@pytest.fixture
def planted(queues: Queues) -> dict[str, list[str]]:
    """Five email dead letters: 2 rejected confirmations, 1 exhausted cancellation, 1 moved by SQS
    itself (no reason), 1 unparseable body carrying the address (no type)."""
    ids = {
        "provider_rejected": [
            email_letter(queues, "provider_rejected", "booking_confirmed", booking_id="bk_1"),
            email_letter(queues, "provider_rejected", "booking_confirmed", booking_id="bk_2"),
        ],
        "transient_exhausted": [email_letter(queues, "transient_exhausted", "booking_cancelled")],
        "none": [email_letter(queues, None, "booking_updated")],
    }
    ids["invalid_json"] = [
        queues.plant(
            queues.email_dlq,
            f'{{"recipient": "{GUEST_EMAIL}", oops',
            {"failure_reason": "invalid_json", "attempts": 0},
        )
    ]
    return ids


# -- inspect -------------------------------------------------------------------------------------


def test_inspect_counts_and_groups_without_consuming_or_revealing_anything(
    dlq: Callable[..., Ran], queues: Queues, planted: dict[str, list[str]]
) -> None:
    ran = dlq("inspect", "--list")
    assert ran.code == 0
    assert "email DLQ      visible 5, in flight 0, delayed 0" in ran.lines
    assert "email queue    visible 0, in flight 0, delayed 0" in ran.lines
    table = [line.split() for line in ran.lines if line.split()[:1] and line.split()[0] in planted]
    assert [row[:4] for row in table if len(row) == 5] == [
        ["invalid_json", "unknown", "<1h", "1"],
        ["none", "booking_updated", "<1h", "1"],
        ["provider_rejected", "booking_confirmed", "<1h", "2"],
        ["transient_exhausted", "booking_cancelled", "<1h", "1"],
    ]
    # --list: one line per letter, by message id
    for ids in planted.values():
        for message_id in ids:
            assert any(line.startswith(message_id) for line in ran.lines)
    assert "looked at 5, 5 selected; nothing deleted, all visible again" in ran.lines
    # Then every letter is still there and visible at once
    assert len(queues.peek(queues.email_dlq)) == 5


def test_inspect_with_a_selection_shows_only_it(
    dlq: Callable[..., Ran], planted: dict[str, list[str]]
) -> None:
    ran = dlq("inspect", "--reason", "provider_rejected", "--reason", "none")
    assert "looked at 5, 3 selected; nothing deleted, all visible again" in ran.lines
    assert not any(line.startswith("transient_exhausted") for line in ran.lines)


def test_inspect_of_an_empty_dlq(dlq: Callable[..., Ran]) -> None:
    ran = dlq("inspect")
    assert ran.code == 0
    assert "no dead letters" in ran.lines


def test_inspect_reads_a_notification_type_from_its_body_and_nothing_else(
    dlq: Callable[..., Ran], queues: Queues
) -> None:
    for event_type in ("policy_drift.recovered", "policy_drift.unrecovered", "policy_drift.recovered"):
        body = json.dumps({"type": event_type, "event_id": str(uuid.uuid4()), "venue_id": "casa"})
        queues.plant(queues.notifications_dlq, body, {"failure_reason": "webhook_rejected", "attempts": 1})
    queues.plant(
        queues.notifications_dlq, json.dumps({"type": GUEST_EMAIL}), {"failure_reason": "invalid_event"}
    )
    ran = dlq("inspect", queue="notifications")
    assert ran.code == 0
    rows = [line.split()[:4] for line in ran.lines if line.startswith(("webhook_", "invalid_"))]
    assert rows == [
        ["invalid_event", "unknown", "<1h", "1"],
        ["webhook_rejected", "policy_drift.recovered", "<1h", "2"],
        ["webhook_rejected", "policy_drift.unrecovered", "<1h", "1"],
    ]


def test_attribute_values_the_dlq_does_not_know_are_never_printed(
    dlq: Callable[..., Ran], queues: Queues, planted: dict[str, list[str]]
) -> None:
    # Given letters SQS moved itself with what the publisher set: a name or a phone number where a
    # type, a reason or a count belongs
    body = json.dumps(job())
    odd = [
        queues.plant(queues.email_dlq, body, {**EMAIL, "email_type": NAME_LIKE, "attempts": int(PHONE_LIKE)}),
        queues.plant(
            queues.email_dlq, body, {**EMAIL, "failure_reason": PHONE_LIKE, "email_type": "booking_confirmed"}
        ),
        queues.plant(
            queues.email_dlq, body, {**EMAIL, "failure_reason": NAME_LIKE, "email_type": PHONE_LIKE}
        ),
    ]
    runs = [
        dlq("inspect", "--list"),
        dlq("redrive", "--dry-run"),
        dlq("discard", "--all"),
        dlq("redrive", "--loop"),
    ]
    # Then no command prints them, and each says it did not recognize them
    for ran in runs:
        assert NAME_LIKE not in ran.out + ran.err
        assert PHONE_LIKE not in ran.out + ran.err
        assert "unrecognized" in ran.out
    inspected = runs[0]
    assert ["none", "unrecognized", "<1h", "1"] in [line.split()[:4] for line in inspected.lines]
    # --list: message_id, failure_reason, type, age, attempts
    listed = {
        row[0]: row[1:3] + row[4:] for row in map(str.split, inspected.lines) if row[:1] and row[0] in odd
    }
    assert listed == {
        odd[0]: ["none", "unrecognized", "unrecognized"],
        odd[1]: ["unrecognized", "booking_confirmed", "-"],
        odd[2]: ["unrecognized", "unrecognized", "-"],
    }
    assert len(queues.peek(queues.email)) == 8


# -- redrive -------------------------------------------------------------------------------------


def test_redrive_of_everything_moves_every_letter_back_with_the_producer_attributes(
    dlq: Callable[..., Ran], queues: Queues, planted: dict[str, list[str]]
) -> None:
    ran = dlq("redrive")
    assert ran.code == 0
    assert "StartMessageMoveTask not available (NotImplemented): moving one by one" in ran.err
    moved = [line for line in ran.lines if line.startswith("moved ") and " -> " in line]
    assert len(moved) == 5
    assert "moved 5 of 5 selected (every dead letter), 5 looked at; by reason: " in ran.out
    # Then the DLQ is empty and the source queue holds the copies, without failure_reason
    assert queues.peek(queues.email_dlq) == []
    copies = queues.peek(queues.email)
    assert sorted(json.dumps(attributes(c), sort_keys=True) for c in copies) == sorted(
        json.dumps(a, sort_keys=True)
        for a in [
            {"attempts": "1", "email_type": "booking_confirmed", "schema": "booking-email/v1"},
            {"attempts": "1", "email_type": "booking_confirmed", "schema": "booking-email/v1"},
            {"attempts": "1", "email_type": "booking_cancelled", "schema": "booking-email/v1"},
            {"attempts": "1", "email_type": "booking_updated", "schema": "booking-email/v1"},
            {"attempts": "0"},
        ]
    )
    assert {c["MessageAttributes"]["attempts"]["DataType"] for c in copies} == {"Number"}


def test_redrive_by_reason_moves_only_those(
    dlq: Callable[..., Ran], queues: Queues, planted: dict[str, list[str]]
) -> None:
    ran = dlq("redrive", "--reason", "provider_rejected")
    assert ran.code == 0
    moved_ids = {line.split()[1] for line in ran.lines if line.startswith("moved ") and " -> " in line}
    assert moved_ids == set(planted["provider_rejected"])
    assert "by reason: provider_rejected 2" in ran.out
    assert len(queues.peek(queues.email)) == 2
    left = queues.peek(queues.email_dlq)
    assert {m["MessageId"] for m in left} == {
        i for r, ids in planted.items() if r != "provider_rejected" for i in ids
    }


def test_redrive_by_type_and_age(
    dlq: Callable[..., Ran], queues: Queues, planted: dict[str, list[str]]
) -> None:
    # Every planted letter is seconds old
    assert dlq("redrive", "--older-than", "1h").lines[-1].startswith("moved 0 of 0 selected")
    ran = dlq("redrive", "--type", "booking_cancelled", "--newer-than", "1h")
    assert ran.code == 0
    assert "moved 1 of 1 selected (type booking_cancelled, newer than 1h00m), 5 looked at" in ran.out
    assert [attributes(m)["email_type"] for m in queues.peek(queues.email)] == ["booking_cancelled"]


def test_a_dry_run_moves_nothing_and_says_what_would_move(
    dlq: Callable[..., Ran], queues: Queues, planted: dict[str, list[str]]
) -> None:
    ran = dlq("redrive", "--dry-run", "--reason", "transient_exhausted")
    assert ran.code == 0
    [would] = [line for line in ran.lines if line.startswith("would move")]
    assert would.split()[2:4] == [planted["transient_exhausted"][0], "transient_exhausted"]
    assert "dry run: would move 1 of 5 looked at; nothing moved" in ran.lines
    assert queues.peek(queues.email) == []
    assert len(queues.peek(queues.email_dlq)) == 5


def test_notifications_are_redriven_to_the_notifications_queue(
    dlq: Callable[..., Ran], queues: Queues
) -> None:
    body = json.dumps({"type": "policy_drift.recovered", "event_id": str(uuid.uuid4())})
    queues.plant(queues.notifications_dlq, body, {"failure_reason": "webhook_unreachable", "attempts": 5})
    ran = dlq("redrive", "--reason", "webhook_unreachable", queue="notifications")
    assert ran.code == 0
    [copy] = queues.peek(queues.notifications)
    assert copy["Body"] == body
    assert attributes(copy) == {"attempts": "5"}
    assert queues.peek(queues.notifications_dlq) == []
    assert queues.peek(queues.email) == []


def test_with_the_move_task_available_sqs_moves_everything_itself(
    dlq: Callable[..., Ran], queues: Queues, planted: dict[str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an endpoint that has StartMessageMoveTask (as SQS in AWS does)
    started: list[int] = []
    statuses = [MoveStatus(MoveState.RUNNING, 2, 5), MoveStatus(MoveState.COMPLETED, 5, 5)]

    def start_move_task(self: SqsDeadLetterQueue, per_second: int) -> str:
        started.append(per_second)
        return "task-1"

    monkeypatch.setattr(SqsDeadLetterQueue, "start_move_task", start_move_task)
    monkeypatch.setattr(SqsDeadLetterQueue, "move_task_status", lambda self: statuses.pop(0))
    monkeypatch.setattr("booking_durability.operations.redrive.time.sleep", lambda _s: None)
    ran = dlq("redrive", "--rate", "2.5")
    assert ran.code == 0
    assert started == [3]
    assert (
        "moving 5 found; by reason: invalid_json 1, none 1, provider_rejected 2, transient_exhausted 1"
        in ran.out
    )
    assert ran.lines[-1] == "move task completed: moved 5 of ~5"
    # The tool moved nothing itself (the fake task did nothing either); --loop makes it move one by one
    assert len(queues.peek(queues.email_dlq)) == 5
    assert dlq("redrive", "--loop").code == 0
    assert len(queues.peek(queues.email)) == 5


def test_the_queues_arns_are_read_once(queues: Queues) -> None:
    dlq = SqsDeadLetterQueue(QueueKind.EMAIL, queues.email_dlq, queues.email, queues.sqs)
    reads: list[str] = []

    def count(params: dict[str, Any], **_: Any) -> None:
        reads.extend(name for name in params["AttributeNames"] if name == "QueueArn")

    event = "provide-client-params.sqs.GetQueueAttributes"
    queues.sqs.meta.events.register(event, count)
    try:
        for _ in range(3):
            with pytest.raises(MoveTaskUnsupported):  # moto in-process: after both ARNs are read
                dlq.start_move_task(1)
    finally:
        queues.sqs.meta.events.unregister(event, count)
    assert reads == ["QueueArn", "QueueArn"]


def test_a_failed_move_task_fails_the_command(
    dlq: Callable[..., Ran], planted: dict[str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(SqsDeadLetterQueue, "start_move_task", lambda self, rate: "task-1")
    monkeypatch.setattr(
        SqsDeadLetterQueue,
        "move_task_status",
        lambda self: MoveStatus(MoveState.FAILED, 1, 5, "AccessDenied"),
    )
    ran = dlq("redrive")
    assert ran.code == 1
    assert ran.lines[-1] == "move task failed: moved 1 of ~5 (AccessDenied)"


def test_an_interruption_between_send_and_delete_loses_nothing_and_the_ledger_delivers_once(
    dlq: Callable[..., Ran], queues: Queues, resources: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an email the provider refused, dead-lettered by the real consumer
    clock = Clock()
    refused = ScriptedProvider(script=[PermanentProviderError("smtp", 550)])
    body = json.dumps(job())
    message = IncomingMessage("m-1", "rh-1", body, receive_count=1)
    assert make_delivery(resources, refused, clock).deliver(message) is Outcome.DEAD_LETTERED
    [letter_id] = [m["MessageId"] for m in queues.peek(queues.email_dlq)]

    # When the redrive is cut off after the send, before the delete
    real_delete = SqsDeadLetterQueue.delete

    def failing_delete(self: SqsDeadLetterQueue, letter: DeadLetter) -> None:
        raise QueueUnavailable("delete_message failed: RequestTimeout")

    monkeypatch.setattr(SqsDeadLetterQueue, "delete", failing_delete)
    cut = dlq("redrive", "--reason", "provider_rejected")
    assert cut.code == 1
    assert f"stopped at {letter_id}: delete_message failed: RequestTimeout" in cut.err
    assert "is on the email queue and it is still in the DLQ" in cut.err
    # Then it is on both queues
    assert [m["MessageId"] for m in queues.peek(queues.email_dlq)] == [letter_id]
    assert len(queues.peek(queues.email)) == 1

    # And a re-run moves it again
    monkeypatch.setattr(SqsDeadLetterQueue, "delete", real_delete)
    assert dlq("redrive", "--reason", "provider_rejected").code == 0
    assert queues.peek(queues.email_dlq) == []
    copies = resources.drain(queues.email)
    assert len(copies) == 2

    # And the consumer delivers the two copies once
    provider = ScriptedProvider()
    delivery = make_delivery(resources, provider, clock)
    outcomes = [
        delivery.deliver(
            IncomingMessage(c["MessageId"], c["ReceiptHandle"], c["Body"], 1, int(attributes(c)["attempts"]))
        )
        for c in copies
    ]
    assert outcomes == [Outcome.SENT, Outcome.DUPLICATE]
    assert len(provider.sent) == 1
    assert resources.status("bk_123", "booking_confirmed#0") == "sent"
    # Delivered outside a handler, nothing flushed the metrics: a later test's handler would
    metrics.clear_metrics()


# -- discard -------------------------------------------------------------------------------------


def test_discard_without_yes_refuses_and_deletes_nothing(
    dlq: Callable[..., Ran], queues: Queues, planted: dict[str, list[str]]
) -> None:
    ran = dlq("discard", "--reason", "invalid_json")
    assert ran.code == 2
    [would] = [line for line in ran.lines if line.startswith("would delete")]
    assert would.split()[2:4] == [planted["invalid_json"][0], "invalid_json"]
    assert ran.lines[-1] == (
        "refused: nothing deleted; add --yes to delete the 1 selected (reason invalid_json); "
        "by reason: invalid_json 1"
    )
    assert len(queues.peek(queues.email_dlq)) == 5


def test_discard_with_yes_deletes_only_the_selection_and_says_what(
    dlq: Callable[..., Ran], queues: Queues, planted: dict[str, list[str]]
) -> None:
    ran = dlq("discard", "--reason", "invalid_json", "--reason", "none", "--yes")
    assert ran.code == 0
    deleted = {
        line.split()[1]: line.split()[2]
        for line in ran.lines
        if line.startswith("deleted ") and " age " in line
    }
    assert deleted == {planted["invalid_json"][0]: "invalid_json", planted["none"][0]: "none"}
    assert "by reason: invalid_json 1, none 1" in ran.lines[-1]
    left = {m["MessageId"] for m in queues.peek(queues.email_dlq)}
    assert left == set(planted["provider_rejected"] + planted["transient_exhausted"])
    assert queues.peek(queues.email) == []


def test_discarding_everything_needs_all(
    dlq: Callable[..., Ran], queues: Queues, planted: dict[str, list[str]]
) -> None:
    refused = dlq("discard", "--yes")
    assert refused.code == 2
    assert "discard needs a selection" in refused.err
    assert len(queues.peek(queues.email_dlq)) == 5
    assert dlq("discard", "--all", "--yes").code == 0
    assert queues.peek(queues.email_dlq) == []


# -- usage and where the queues are --------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["--reason", "provider_rejectd"], "unknown reason provider_rejectd for the email DLQ"),
        (["--type", "booking_confirmd"], "unknown type booking_confirmd"),
        (["--older-than", "2 days"], "a duration is a number and a unit"),
        (["--rate", "0"], "must be a positive number"),
    ],
)
def test_usage_errors_exit_2(dlq: Callable[..., Ran], args: list[str], complaint: str) -> None:
    ran = dlq("redrive", *args)
    assert ran.code == 2
    assert complaint in ran.err


def test_queue_urls_go_together_with_aws(dlq_main: Callable[[list[str]], int]) -> None:
    with pytest.raises(SystemExit) as exited:
        dlq_main(["inspect", "--dlq-url", "https://sqs.example/1/dlq"])
    assert exited.value.code == 2


def test_the_queues_come_from_the_stack_outputs_with_aws(
    dlq_main: Callable[[list[str]], int], queues: Queues, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a deployed stack whose outputs name the notifications queues
    template = {
        "Resources": {"Anything": {"Type": "AWS::SQS::Queue"}},
        "Outputs": {
            "NotificationsQueueUrl": {"Value": queues.notifications},
            "NotificationsDlqUrl": {"Value": queues.notifications_dlq},
        },
    }
    boto3.client("cloudformation", region_name=REGION).create_stack(
        StackName="BookingDurability-test", TemplateBody=json.dumps(template)
    )
    queues.plant(queues.notifications_dlq, "{}", {"failure_reason": "invalid_event", "attempts": 0})
    stack = ["--aws", "--stack", "BookingDurability-test", "--wait-seconds", "0"]
    assert dlq_main(["inspect", "--queue", "notifications", *stack]) == 0
    assert "notifications DLQ      visible 1, in flight 0, delayed 0" in capsys.readouterr().out
    # A stack without the outputs is a failure that says which
    assert dlq_main(["inspect", *stack]) == 1
    assert "has no EmailQueueUrl or EmailDlqUrl output" in capsys.readouterr().err


def test_without_a_local_stack_the_tool_says_how_to_start_one(
    dlq_main: Callable[[list[str]], int],
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("LOCAL_DIR", str(tmp_path))
    assert dlq_main(["inspect"]) == 1
    assert "start it with `make run`" in capsys.readouterr().err


def test_the_local_stack_file_names_each_dlq_and_its_source(tmp_path: Any) -> None:
    stack = tmp_path / "stack.json"
    stack.write_text(
        json.dumps(
            {
                "aws_endpoint_url": "http://127.0.0.1:4566",
                "region": REGION,
                "queues": {"email": "E", "email_dlq": "ED", "notifications": "N", "notifications_dlq": "ND"},
            }
        )
    )
    notifications = locate_local(stack, QueueKind.NOTIFICATIONS)
    assert (notifications.source_url, notifications.url) == ("N", "ND")
    assert notifications.client.meta.endpoint_url == "http://127.0.0.1:4566"


# -- as a command, against a local moto server (the way `make run` serves it) --------------------


@pytest.fixture
def local_stack(tmp_path: Path, moto_server: MotoServer) -> tuple[dict[str, str], Queues]:
    """moto server with the template's queues, and the stack.json naming them."""
    urls = moto_server.queues
    env = moto_server.write_stack_json(tmp_path, queues=urls)
    queues = Queues(
        urls["email"],
        urls["email_dlq"],
        urls["notifications"],
        urls["notifications_dlq"],
        moto_server.client("sqs"),
    )
    return env, queues


def test_the_command_works_against_the_local_stack(local_stack: tuple[dict[str, str], Queues]) -> None:
    env, queues = local_stack
    for reason in ("provider_rejected", "provider_rejected", "render_failed"):
        email_letter(queues, reason, "booking_confirmed")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "scripts/dlq.py", *args]
        ran = subprocess.run(
            command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
        )
        for planted in PII:
            assert planted not in ran.stdout + ran.stderr
        return ran

    inspected = run("inspect")
    assert inspected.returncode == 0
    assert "email DLQ      visible 3, in flight 0, delayed 0" in inspected.stdout.splitlines()
    # moto server has no StartMessageMoveTask: the tool moves them one by one
    moved = run("redrive")
    assert moved.returncode == 0, moved.stderr
    assert "StartMessageMoveTask not available" in moved.stderr
    assert "moved 3 of 3 selected (every dead letter), 3 looked at" in moved.stdout
    assert len(queues.peek(queues.email)) == 3
    assert queues.peek(queues.email_dlq) == []


@pytest.fixture(autouse=True)
def _no_stray_output(capsys: pytest.CaptureFixture[str]) -> Iterator[None]:
    yield
    captured = capsys.readouterr()
    for planted in PII:
        assert planted not in captured.out + captured.err
