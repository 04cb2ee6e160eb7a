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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters

from booking_durability import wiring
from booking_durability.adapters.email_queue import EmailQueue
from booking_durability.emails.delivery import EmailOutcome, IncomingMessage
from booking_durability.emails.ports import OutgoingMessage
from booking_durability.emails.providers.base import PermanentProviderError
from booking_durability.observability import metrics
from devstack.http_provider import HttpProviderDouble
from devstack.webhook_sink import WebhookSink
from devstack.worker import delete_records, records_to_delete, sqs_event
from operations.dead_letter_queues import QueueUnavailable, SqsDeadLetterQueue, locate_local
from operations.dead_letters import DeadLetter, QueueKind
from tests.builders import GUEST_EMAIL, GUEST_NAME, PII, LambdaContext, job
from tests.integration.conftest import (
    REGION,
    ROOT,
    Clock,
    MotoServer,
    Resources,
    ScriptedProvider,
    attributes,
    import_handler,
    make_delivery,
    template_queue_url,
)
from tests.unit.notifications.builders import SECRET, as_body, drift_event

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
    deliveries_table: str = ""

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
        deliveries_table=resources.table,
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
    assert [row[:4] for row in table if len(row) == 6] == [
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
    def body() -> str:
        return json.dumps(job())

    odd = [
        queues.plant(
            queues.email_dlq, body(), {**EMAIL, "email_type": NAME_LIKE, "attempts": int(PHONE_LIKE)}
        ),
        queues.plant(
            queues.email_dlq,
            body(),
            {**EMAIL, "failure_reason": PHONE_LIKE, "email_type": "booking_confirmed"},
        ),
        queues.plant(
            queues.email_dlq, body(), {**EMAIL, "failure_reason": NAME_LIKE, "email_type": PHONE_LIKE}
        ),
    ]
    runs = [
        dlq("inspect", "--list"),
        dlq("redrive", "--dry-run"),
        dlq("discard", "--all"),
        dlq("redrive", "--force"),
    ]
    # Then no command prints them, and each says it did not recognize them
    for ran in runs:
        assert NAME_LIKE not in ran.out + ran.err
        assert PHONE_LIKE not in ran.out + ran.err
        assert "unrecognized" in ran.out
    inspected = runs[0]
    assert ["none", "unrecognized", "<1h", "1"] in [line.split()[:4] for line in inspected.lines]
    # --list: message_id, failure_reason, type, dedupe_key, age, attempts, expires
    listed = {
        row[0]: row[1:4] + row[5:6] for row in map(str.split, inspected.lines) if row[:1] and row[0] in odd
    }
    assert listed == {
        odd[0]: ["none", "unrecognized", "-", "unrecognized"],
        odd[1]: ["unrecognized", "booking_confirmed", "-", "-"],
        odd[2]: ["unrecognized", "unrecognized", "-", "-"],
    }
    copies = queues.peek(queues.email)
    assert len(copies) == 8
    # And the copies carry none of those values on
    for copy in copies:
        assert NAME_LIKE not in json.dumps(copy["MessageAttributes"])
        assert PHONE_LIKE not in json.dumps(copy["MessageAttributes"])


# -- redrive -------------------------------------------------------------------------------------


def test_a_plain_redrive_moves_all_but_the_permanent_reasons_and_says_why_it_left_those(
    dlq: Callable[..., Ran], queues: Queues, planted: dict[str, list[str]]
) -> None:
    ran = dlq("redrive")
    # Then the letters that may succeed now moved, each printed as it moved
    moved = [line for line in ran.lines if line.startswith("moved ") and " -> " in line]
    assert {line.split()[1] for line in moved} == {*planted["transient_exhausted"], *planted["none"]}
    assert (
        "moved 2 of 5 selected (every dead letter), 5 looked at; by reason: none 1, transient_exhausted 1"
        in (ran.out)
    )
    # And the permanent ones were refused, counted by reason, with what to do
    assert ran.code == 2
    assert (
        "refused: 3 selected not moved; by reason: invalid_json 1, provider_rejected 2: a permanent reason, "
        "which a redrive meets again unless its cause was fixed; fix the cause, then add --force"
    ) in ran.out
    assert {m["MessageId"] for m in queues.peek(queues.email_dlq)} == {
        *planted["invalid_json"],
        *planted["provider_rejected"],
    }
    assert len(queues.peek(queues.email)) == 2


def test_redrive_with_force_moves_every_letter_back_with_the_producer_attributes(
    dlq: Callable[..., Ran], queues: Queues, planted: dict[str, list[str]]
) -> None:
    ran = dlq("redrive", "--force")
    assert ran.code == 0
    moved = [line for line in ran.lines if line.startswith("moved ") and " -> " in line]
    assert len(moved) == 5
    assert "moved 5 of 5 selected (every dead letter), 5 looked at; by reason: " in ran.out
    # Then the DLQ is empty and the source queue holds the copies, without failure_reason, each
    # saying when it was first dead-lettered
    assert queues.peek(queues.email_dlq) == []
    copies = queues.peek(queues.email)
    assert all(attributes(c).pop("first_dead_lettered_at").endswith("Z") for c in copies)
    assert sorted(
        json.dumps({k: v for k, v in attributes(c).items() if k != "first_dead_lettered_at"}, sort_keys=True)
        for c in copies
    ) == sorted(
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


def test_redrive_by_a_permanent_reason_needs_force(
    dlq: Callable[..., Ran], queues: Queues, planted: dict[str, list[str]]
) -> None:
    refused = dlq("redrive", "--reason", "provider_rejected")
    assert refused.code == 2
    assert "moved 0 of 2 selected (reason provider_rejected), 5 looked at" in refused.out
    assert "refused: 2 selected not moved; by reason: provider_rejected 2" in refused.out
    assert queues.peek(queues.email) == []

    ran = dlq("redrive", "--reason", "provider_rejected", "--force")
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
    assert set(attributes(copy)) == {"attempts", "first_dead_lettered_at"}
    assert attributes(copy)["attempts"] == "5"
    assert queues.peek(queues.notifications_dlq) == []
    assert queues.peek(queues.email) == []


def test_an_interruption_between_send_and_delete_loses_nothing_and_the_ledger_delivers_once(
    dlq: Callable[..., Ran], queues: Queues, resources: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an email the provider refused, dead-lettered by the real consumer
    clock = Clock()
    refused = ScriptedProvider(script=[PermanentProviderError("smtp", 550)])
    body = json.dumps(job())
    message = IncomingMessage("m-1", "rh-1", body, receive_count=1)
    assert make_delivery(resources, refused, clock).deliver(message) is EmailOutcome.DEAD_LETTERED
    [letter_id] = [m["MessageId"] for m in queues.peek(queues.email_dlq)]

    # When the redrive is cut off after the send, before the delete
    real_delete = SqsDeadLetterQueue.delete

    def failing_delete(self: SqsDeadLetterQueue, letter: DeadLetter) -> None:
        raise QueueUnavailable("delete_message failed: RequestTimeout")

    monkeypatch.setattr(SqsDeadLetterQueue, "delete", failing_delete)
    cut = dlq("redrive", "--reason", "provider_rejected", "--force")
    assert cut.code == 1
    assert f"stopped at {letter_id}: delete_message failed: RequestTimeout" in cut.err
    assert "is on the email queue and it is still in the DLQ" in cut.err
    # Then it is on both queues
    assert [m["MessageId"] for m in queues.peek(queues.email_dlq)] == [letter_id]
    assert len(queues.peek(queues.email)) == 1

    # And a re-run moves it again
    monkeypatch.setattr(SqsDeadLetterQueue, "delete", real_delete)
    assert dlq("redrive", "--reason", "provider_rejected", "--force").code == 0
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
    assert outcomes == [EmailOutcome.SENT, EmailOutcome.DUPLICATE]
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
    # Permanent reasons all: a plain redrive refuses them, --force moves them
    refused = run("redrive")
    assert refused.returncode == 2, refused.stderr
    assert "refused: 3 selected not moved; by reason: provider_rejected 2, render_failed 1" in refused.stdout
    moved = run("redrive", "--force")
    assert moved.returncode == 0, moved.stderr
    assert "moved 3 of 3 selected (every dead letter), 3 looked at" in moved.stdout
    assert len(queues.peek(queues.email)) == 3
    assert queues.peek(queues.email_dlq) == []


@pytest.fixture(autouse=True)
def _no_stray_output(capsys: pytest.CaptureFixture[str]) -> Iterator[None]:
    yield
    captured = capsys.readouterr()
    for planted in PII:
        assert planted not in captured.out + captured.err


# -- a pass moves each letter once, with the real function behind the queue ----------------------

#: More moves than any test's pass needs: reaching it means the pass takes back what it moved.
FLOOD = 12
API_KEY = "re_test_key_never_logged"


@dataclass
class FunctionBehindTheQueue:
    """The source queue as the tool sends to it, with the real Lambda function behind it: each
    copy the tool sends is consumed at once, as the event source mapping would hand it over, its
    failures received again at once (their visibility timeout, skipped), until it is acknowledged
    or dead-lettered again. So a letter that fails again is back in the DLQ, under a new message
    id, while the pass is still going."""

    queue: EmailQueue
    handler: Any
    arn: str
    sqs: Any
    sent: int = 0

    def send(self, message: OutgoingMessage) -> str:
        self.sent += 1
        if self.sent > FLOOD:
            pytest.fail(f"the pass moved {self.sent} letters: it takes back the letters it moved")
        copy_id = self.queue.send(message)
        self.consume()
        return copy_id

    def change_visibility(self, receipt_handle: str, seconds: int) -> None:
        self.queue.change_visibility(receipt_handle, seconds)

    def consume(self) -> None:
        url = self.queue.queue_url
        for _ in range(FLOOD):
            messages = self.sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=10,
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            if not messages:
                return
            event = sqs_event(messages, queue_arn=self.arn, region=REGION)
            response = self.handler(event, LambdaContext())
            done = records_to_delete(event["Records"], response, report_batch_item_failures=True)
            delete_records(self.sqs, url, done)
            for record in event["Records"]:
                if record not in done:
                    self.sqs.change_message_visibility(
                        QueueUrl=url, ReceiptHandle=record["receiptHandle"], VisibilityTimeout=0
                    )


@pytest.fixture
def provider() -> Iterator[HttpProviderDouble]:
    with HttpProviderDouble(api_key=API_KEY) as running:
        yield running


def _function(monkeypatch: pytest.MonkeyPatch, function: str, env: dict[str, str]) -> Any:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    wiring.reset()
    parameters.clear_caches()
    return import_handler(function)


@pytest.fixture
def behind(
    queues: Queues, provider: HttpProviderDouble, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[str], FunctionBehindTheQueue]]:
    """Puts the real email consumer (the HTTP provider double behind it) or the real notifier
    (the local webhook sink behind it) behind the queue the tool redrives to."""
    secret_arn = boto3.client("secretsmanager", region_name=REGION).create_secret(
        Name="booking-durability/email-provider", SecretString=json.dumps({"api_key": API_KEY})
    )["ARN"]
    sink = WebhookSink(tmp_path / "webhooks.jsonl").start()
    made: list[FunctionBehindTheQueue] = []

    def put(queue: str) -> FunctionBehindTheQueue:
        if queue == "email":
            url, handler = (
                queues.email,
                _function(
                    monkeypatch,
                    "email_consumer",
                    {
                        "STAGE": "test",
                        "DELIVERIES_TABLE": queues.deliveries_table,
                        "EMAIL_QUEUE_URL": queues.email,
                        "EMAIL_DLQ_URL": queues.email_dlq,
                        "EMAIL_PROVIDER": "resend",
                        "RESEND_BASE_URL": provider.url,
                        "PROVIDER_SECRET_ARN": secret_arn,
                        "BACKOFF_BASE_SECONDS": "1",
                        "THROTTLE_BACKOFF_SECONDS": "1",
                    },
                ),
            )
        else:
            url, handler = (
                queues.notifications,
                _function(
                    monkeypatch,
                    "notifier",
                    {
                        "NOTIFICATIONS_DLQ_URL": queues.notifications_dlq,
                        "WEBHOOK_URL": f"{sink.url}/webhooks/policy-drift",
                        "WEBHOOK_SECRET": SECRET,
                        "WEBHOOK_TIMEOUT_SECONDS": "2",
                    },
                ),
            )
        arn = queues.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        function = FunctionBehindTheQueue(EmailQueue(url, queues.sqs), handler, arn, queues.sqs)
        made.append(function)
        monkeypatch.setattr(SqsDeadLetterQueue, "source", lambda self: function)
        return function

    yield put
    sink.stop()
    wiring.reset()
    # Handlers invoked here flush their metrics; a later test's handler must not inherit any
    metrics.clear_metrics()


def now_job(**overrides: Any) -> str:
    return json.dumps(job(deliver_at=datetime.now(UTC), **overrides))


def moves(ran: Ran) -> list[str]:
    return [line for line in ran.lines if line.startswith("moved ") and " -> " in line]


@pytest.mark.parametrize(
    ("queue", "reason", "body", "args"),
    [
        pytest.param(
            "email", "provider_rejected", lambda: now_job(email="ana.guest+permanent@example.test"),
            ["--reason", "provider_rejected", "--force"], id="provider_rejected, --force",
        ),
        pytest.param(
            "email", "schema_invalid", lambda: json.dumps({**job(), "revision": "one"}),
            ["--force"], id="schema_invalid, --force",
        ),
        pytest.param(
            "email", "transient_exhausted", lambda: now_job(email="ana.guest+transient99@example.test"),
            [], id="transient_exhausted, plain redrive",
        ),
        pytest.param(
            "notifications", "webhook_unreachable", lambda: as_body(drift_event()),
            [], id="notifications, webhook_unreachable, plain redrive",
        ),
    ],
)  # fmt: skip
def test_a_letter_that_fails_again_is_moved_once_per_pass(
    dlq: Callable[..., Ran],
    queues: Queues,
    behind: Callable[[str], FunctionBehindTheQueue],
    provider: HttpProviderDouble,
    tmp_path: Path,
    queue: str,
    reason: str,
    body: Callable[[], str],
    args: list[str],
) -> None:
    # Given one dead letter whose cause is still there (a refusing provider or receiver, a body
    # that cannot validate), and the real function behind its queue
    dead_letter_queue = queues.email_dlq if queue == "email" else queues.notifications_dlq
    attrs: dict[str, str | int] = {"failure_reason": reason, "attempts": 1}
    if queue == "email":
        attrs |= {**EMAIL, "email_type": "booking_confirmed"}
    letter_id = queues.plant(dead_letter_queue, body(), attrs)
    function = behind(queue)
    (tmp_path / "webhook-down").touch()  # the receiver is down

    # When a pass redrives it, and the function fails it again while the pass goes on
    ran = dlq("redrive", *args, queue=queue)

    # Then the pass moved it once, and ended
    assert ran.code == 0, ran.err
    [moved] = moves(ran)
    assert moved.split()[1] == letter_id
    assert function.sent == 1
    assert (
        "left 1 carrying the message of one this pass moved (dead-lettered again, or a copy of it)" in ran.out
    )
    # And the letter is back in the DLQ once, dead-lettered again under a new message id
    [again] = queues.peek(dead_letter_queue)
    assert again["MessageId"] != letter_id
    assert attributes(again)["failure_reason"] == reason
    assert queues.peek(queues.email if queue == "email" else queues.notifications) == []
    # And the provider was asked no more than that one copy's attempts
    if reason == "provider_rejected":
        assert [answer.status for answer in provider.answers] == [422]


def test_repeating_a_redrive_moves_each_letter_once_per_run_and_sends_each_email_once(
    dlq: Callable[..., Ran],
    queues: Queues,
    behind: Callable[[str], FunctionBehindTheQueue],
    provider: HttpProviderDouble,
) -> None:
    # Given two letters the provider refused, one of which it would now accept (its cause fixed)
    fixed = queues.plant(
        queues.email_dlq,
        now_job(booking_id="bk_fixed"),
        {**EMAIL, "failure_reason": "provider_rejected", "email_type": "booking_confirmed", "attempts": 1},
    )
    still = queues.plant(
        queues.email_dlq,
        now_job(booking_id="bk_still", email="ana.guest+permanent@example.test"),
        {**EMAIL, "failure_reason": "provider_rejected", "email_type": "booking_confirmed", "attempts": 1},
    )
    function = behind("email")
    # When the same redrive runs three times
    runs = [dlq("redrive", "--reason", "provider_rejected", "--force") for _ in range(3)]
    # Then the first moved both, and each later one only the letter that failed again, once
    assert [run.code for run in runs] == [0, 0, 0]
    assert sorted(line.split()[1] for line in moves(runs[0])) == sorted([fixed, still])
    assert [len(moves(run)) for run in runs[1:]] == [1, 1]
    assert function.sent == 4
    # And the guest whose email could go got it once; the other was refused once a run
    assert [delivery.idempotency_key for delivery in provider.deliveries] == ["bk_fixed#booking_confirmed#0"]
    assert provider.attempts("bk_still#booking_confirmed#0") == 3
    [left] = queues.peek(queues.email_dlq)
    assert json.loads(left["Body"])["booking_id"] == "bk_still"


# -- tracing a letter: its dedupe key or event id, its message id, its first dead-lettering ------


def listed(ran: Ran, ids: list[str]) -> dict[str, list[str]]:
    """``--list`` rows by message id: failure_reason, type, key, age, attempts, expires."""
    return {row[0]: row[1:] for row in map(str.split, ran.lines) if row[:1] and row[0] in ids}


def test_inspect_lists_each_email_letters_dedupe_key_only_when_it_is_one(
    dlq: Callable[..., Ran], queues: Queues
) -> None:
    rejected = {
        **EMAIL,
        "failure_reason": "provider_rejected",
        "email_type": "booking_confirmed",
        "attempts": 2,
    }
    ids = [
        queues.plant(
            queues.email_dlq, json.dumps(job()), {**rejected, "dedupe_key": "bk_42#booking_confirmed#0"}
        ),
        queues.plant(queues.email_dlq, json.dumps(job()), {**rejected, "dedupe_key": f"{PHONE_LIKE}#x#0"}),
        queues.plant(
            queues.email_dlq,
            json.dumps(job()),
            {**rejected, "dedupe_key": f"{GUEST_EMAIL}#booking_confirmed#0"},
        ),
        queues.plant(queues.email_dlq, json.dumps(job()), rejected),
    ]
    ran = dlq("inspect", "--list")
    assert "message_id" in ran.out
    assert "dedupe_key" in ran.out
    rows = listed(ran, ids)
    assert [rows[i][:3] for i in ids] == [
        ["provider_rejected", "booking_confirmed", "bk_42#booking_confirmed#0"],
        ["provider_rejected", "booking_confirmed", "unrecognized"],
        ["provider_rejected", "booking_confirmed", "unrecognized"],
        ["provider_rejected", "booking_confirmed", "-"],
    ]
    assert PHONE_LIKE not in ran.out
    # And a redrive passes none of the unrecognized values on
    assert dlq("redrive", "--force").code == 0
    copies = [attributes(copy) for copy in queues.peek(queues.email)]
    assert sorted(copy.get("dedupe_key", "-") for copy in copies) == [
        "-",
        "-",
        "-",
        "bk_42#booking_confirmed#0",
    ]
    assert all(planted not in json.dumps(copies) for planted in (PHONE_LIKE, *PII))


def test_inspect_lists_a_notification_letters_event_id_from_its_body(
    dlq: Callable[..., Ran], queues: Queues
) -> None:
    event = drift_event()
    ids = [
        queues.plant(
            queues.notifications_dlq, as_body(event), {"failure_reason": "webhook_rejected", "attempts": 1}
        ),
        queues.plant(
            queues.notifications_dlq,
            json.dumps({"event_id": GUEST_EMAIL}),
            {"failure_reason": "invalid_event"},
        ),
    ]
    ran = dlq("inspect", "--list", queue="notifications")
    assert "event_id" in ran.out
    rows = listed(ran, ids)
    assert rows[ids[0]][:3] == ["webhook_rejected", "policy_drift.recovered", event["event_id"]]
    assert rows[ids[1]][:3] == ["invalid_event", "unknown", "unrecognized"]


def test_a_single_letter_is_inspected_redriven_and_discarded_by_dedupe_key_or_message_id(
    dlq: Callable[..., Ran], queues: Queues
) -> None:
    # Given three letters the provider refused, for three emails
    def plant(key: str) -> str:
        booking_id = key.split("#")[0]
        return queues.plant(
            queues.email_dlq,
            json.dumps(job(booking_id=booking_id)),
            {
                **EMAIL,
                "failure_reason": "provider_rejected",
                "email_type": "booking_confirmed",
                "dedupe_key": key,
            },
        )

    first, second, third = (plant(f"bk_{n}#booking_confirmed#0") for n in (1, 2, 3))
    # When one is looked at by its dedupe key, then redriven by it, and another discarded by its id
    looked = dlq("inspect", "--list", "--dedupe-key", "bk_2#booking_confirmed#0")
    moved = dlq("redrive", "--force", "--dedupe-key", "bk_2#booking_confirmed#0")
    gone = dlq("discard", "--message-id", third, "--yes")
    # Then each acted on that letter alone
    assert list(listed(looked, [first, second, third])) == [second]
    assert "looked at 3, 1 selected" in looked.out
    assert [line.split()[1] for line in moves(moved)] == [second]
    assert "(dedupe_key bk_2#booking_confirmed#0)" in moved.out
    assert [line.split()[1] for line in gone.lines if line.startswith("deleted ") and " age " in line] == [
        third
    ]
    assert [m["MessageId"] for m in queues.peek(queues.email_dlq)] == [first]
    [copy] = queues.peek(queues.email)
    assert attributes(copy)["dedupe_key"] == "bk_2#booking_confirmed#0"


def test_a_notification_letter_is_redriven_by_its_event_id(dlq: Callable[..., Ran], queues: Queues) -> None:
    events = [drift_event() for _ in range(2)]
    for event in events:
        queues.plant(queues.notifications_dlq, as_body(event), {"failure_reason": "webhook_unreachable"})
    ran = dlq("redrive", "--event-id", events[1]["event_id"].upper(), queue="notifications")
    assert ran.code == 0
    [copy] = queues.peek(queues.notifications)
    assert json.loads(copy["Body"])["event_id"] == events[1]["event_id"]


def test_an_unreadable_reason_shows_as_unrecognized_and_can_be_selected(
    dlq: Callable[..., Ran], queues: Queues, planted: dict[str, list[str]]
) -> None:
    odd = queues.plant(queues.email_dlq, json.dumps(job()), {**EMAIL, "failure_reason": PHONE_LIKE})
    looked = dlq("inspect", "--reason", "unrecognized", "--list")
    assert list(listed(looked, [odd, *(i for ids in planted.values() for i in ids)])) == [odd]
    assert "looked at 6, 1 selected" in looked.out
    gone = dlq("discard", "--reason", "unrecognized", "--yes")
    assert gone.code == 0
    assert odd not in {m["MessageId"] for m in queues.peek(queues.email_dlq)}
    assert len(queues.peek(queues.email_dlq)) == 5


def test_ages_count_from_the_first_dead_lettering_so_older_than_survives_a_redrive(
    dlq: Callable[..., Ran], queues: Queues
) -> None:
    # Given a letter dead-lettered three days ago and redriven since (it reached the DLQ again just
    # now), and letters whose first_dead_lettered_at is missing or unreadable
    three_days_ago = (datetime.now(UTC) - timedelta(days=3)).isoformat().replace("+00:00", "Z")
    base = {**EMAIL, "failure_reason": "transient_exhausted", "email_type": "booking_confirmed"}
    old = queues.plant(
        queues.email_dlq, json.dumps(job()), {**base, "first_dead_lettered_at": three_days_ago}
    )
    fresh = queues.plant(queues.email_dlq, json.dumps(job()), base)
    garbled = queues.plant(
        queues.email_dlq, json.dumps(job()), {**base, "first_dead_lettered_at": PHONE_LIKE}
    )
    future = queues.plant(
        queues.email_dlq, json.dumps(job()), {**base, "first_dead_lettered_at": "2099-01-01T00:00:00Z"}
    )
    # Then --older-than picks the first only, and its age reads from its first dead-lettering
    looked = dlq("inspect", "--older-than", "1d", "--list")
    assert PHONE_LIKE not in looked.out
    rows = listed(looked, [old, fresh, garbled, future])
    assert list(rows) == [old]
    assert rows[old][3].startswith("3d")
    # While SQS keeps it its full retention from its arrival in the DLQ
    assert rows[old][5].startswith("13d23h")
    assert "<7d" in looked.out
    # And a redrive carries the first dead-lettering on to the copy
    assert dlq("redrive", "--older-than", "1d").code == 0
    [copy] = queues.peek(queues.email)
    assert attributes(copy)["first_dead_lettered_at"].startswith(three_days_ago[:19])


def test_a_letter_whose_body_did_not_validate_shows_its_email_type_attribute_when_known(
    dlq: Callable[..., Ran], queues: Queues
) -> None:
    invalid = {**EMAIL, "failure_reason": "schema_invalid"}
    known_type = queues.plant(
        queues.email_dlq, f'{{"recipient": "{GUEST_EMAIL}"}}', {**invalid, "email_type": "booking_updated"}
    )
    named = queues.plant(
        queues.email_dlq, f'{{"recipient": "{GUEST_EMAIL}"}}', {**invalid, "email_type": NAME_LIKE}
    )
    ran = dlq("inspect", "--list")
    rows = listed(ran, [known_type, named])
    assert rows[known_type][:2] == ["schema_invalid", "booking_updated"]
    assert rows[named][:2] == ["schema_invalid", "unrecognized"]
    assert NAME_LIKE not in ran.out


@pytest.mark.parametrize(
    ("args", "queue", "complaint"),
    [
        (
            ["--dedupe-key", f"{GUEST_NAME}#booking_confirmed#0"],
            "email",
            "1 --dedupe-key value(s) not a dedupe key",
        ),
        (["--dedupe-key", "bk_1#booking_confirmed"], "email", "not a dedupe key"),
        (["--event-id", str(uuid.uuid4())], "email", "--event-id selects notification letters"),
        (
            ["--dedupe-key", "bk_1#booking_confirmed#0"],
            "notifications",
            "a notification letter has an --event-id",
        ),
        (["--event-id", "not-a-uuid"], "notifications", "1 --event-id value(s) not an event id"),
        (["--reason", "unrecognised"], "email", "unknown reason unrecognised"),
        (["--message-id", GUEST_EMAIL], "email", "1 --message-id value(s) not a message id"),
    ],
)
def test_selecting_by_something_that_is_not_one_is_a_usage_error(
    dlq: Callable[..., Ran], args: list[str], queue: str, complaint: str
) -> None:
    ran = dlq("inspect", *args, queue=queue)
    assert ran.code == 2
    assert complaint in ran.err
