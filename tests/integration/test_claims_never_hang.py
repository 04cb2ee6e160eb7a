"""Fault injection through the consumer: whatever fails, and whenever, no claim is left hanging
and nothing reaches the DLQ without a reason (README.md, "How delivery stays exactly-once").

The queue and its DLQ are moto's, with the template's redrive policy: a message that fails its
fifth receive is moved to the DLQ by SQS itself, without a ``failure_reason``, exactly what the
consumer must never leave to happen. Time is the test's: a delay or a backoff advances the clock
and the message is made visible at once. Faults are raised at each step of a delivery (parse,
claim, render, send, the ledger's writes, re-queue, dead-letter send), once each, before or after
the call took effect, as our own bugs (``RuntimeError``) or as the dependency failing.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from moto import mock_aws

from booking_durability.emails import delivery as delivery_module
from booking_durability.emails.consumer import consume_batch
from booking_durability.emails.delivery import EmailDelivery
from booking_durability.emails.ledger import StatusWrite
from booking_durability.emails.models import FailureReason
from booking_durability.emails.ports import MessageQueue, OutgoingMessage
from booking_durability.emails.providers.base import (
    OutgoingEmail,
    PermanentProviderError,
    ProviderError,
    ProviderThrottled,
    TransientProviderError,
)
from booking_durability.emails.rendering import render_email
from booking_durability.errors import QueueSendFailed, StoreUnavailable
from booking_durability.observability import metrics
from booking_durability.queue_attributes import instant_of
from devstack.atomic_moto import make_dynamodb_atomic
from devstack.worker import records_to_delete, sqs_event
from tests.builders import T0, job
from tests.integration.conftest import (
    REGION,
    Clock,
    Resources,
    consumer_of,
    ledger,
    make_delivery,
    resources_from,
)

STEPS = ("parse", "claim", "render", "send", "record", "requeue", "dead_letter")
#: What each step's dependency raises when it fails (beside our own bugs).
INFRA = {
    "parse": RecursionError,  # JSON nested too deep to read, say
    "claim": StoreUnavailable,
    "render": OverflowError,  # an instant past the calendar in the guest's zone
    "send": TransientProviderError,
    "record": StoreUnavailable,
    "requeue": QueueSendFailed,
    "dead_letter": QueueSendFailed,
}
#: Steps whose call can take effect and still raise (the response lost on the way back).
CAN_TAKE_EFFECT = {"claim", "record", "requeue", "dead_letter"}


@dataclass(frozen=True)
class Fault:
    step: str
    invocation: int  # the n-th time the handler is given (a copy of) the message
    bug: bool  # our own bug (RuntimeError) rather than the dependency failing
    after: bool = False  # raised once the call took effect

    def error(self) -> BaseException:
        if not self.bug:
            kind = INFRA[self.step]
            return kind("resend", 503) if kind is TransientProviderError else kind(f"injected {self.step}")
        return RuntimeError(f"injected {self.step}")


@dataclass
class Faults:
    """The faults of one run, each raised once, at its step during its invocation."""

    planned: list[Fault]
    invocation: int = 0
    raised: list[Fault] = field(default_factory=list)

    def around(self, step: str, call: Callable[[], Any]) -> Any:
        fault = next(
            (
                f
                for f in self.planned
                if (f.step, f.invocation) == (step, self.invocation) and f not in self.raised
            ),
            None,
        )
        if fault is None:
            return call()
        self.raised.append(fault)
        if fault.after:
            call()
        raise fault.error()


class FaultyLedger:
    """The real ledger, its writes failing as planned; remembers every lease it handed out."""

    def __init__(self, real: Any, faults: Faults) -> None:
        self.real = real
        self.faults = faults
        self.tokens: set[str] = set()

    def claim(self, *args: Any, **kwargs: Any) -> StatusWrite:
        written: StatusWrite = self.faults.around("claim", lambda: self.real.claim(*args, **kwargs))
        # Ours once the consumer holds the token (not when the answer was lost on the way back).
        if written.done and written.record.lease_token:
            self.tokens.add(written.record.lease_token)
        return written

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.real, name)
        if name not in ("mark_sent", "finish", "release", "retain", "expire_unsent"):
            return method
        return lambda *args, **kwargs: self.faults.around("record", lambda: method(*args, **kwargs))


class ClockedQueue:
    """An SQS queue on moto whose delays pass at once: what a message was told to wait (a delay,
    a backoff) is noted in ``waits``, and the run moves its clock on once the invocation is over
    (never during one: records of a batch are handled together, at one time)."""

    def __init__(self, real: MessageQueue, waits: list[int], faults: Faults, step: str) -> None:
        self.real = real
        self.waits = waits
        self.faults = faults
        self.step = step

    def send(self, message: OutgoingMessage) -> str:
        def sent() -> str:
            self.waits.append(message.delay_seconds)
            return self.real.send(OutgoingMessage(message.body, message.attributes, 0))

        result: str = self.faults.around(self.step, sent)
        return result

    def change_visibility(self, receipt_handle: str, seconds: int) -> None:
        self.waits.append(seconds)  # the backoff passes; the harness shows the message at once


#: How the provider may answer a send (None: accepted).
ANSWERS: dict[str, Callable[[], ProviderError] | None] = {
    "accept": None,
    "503": lambda: TransientProviderError("resend", 503),
    "429": lambda: ProviderThrottled("resend", 429, retry_after=1),
    "429-long": lambda: ProviderThrottled("resend", 429, retry_after=3600),  # deferred as a copy
    "422": lambda: PermanentProviderError("resend", 422),
}


@dataclass
class ScriptedAnswers:
    """Answers each send from ``script`` (names of ``ANSWERS``), then accepts; keeps what it took."""

    faults: Faults
    script: list[str] = field(default_factory=list)
    sent: list[OutgoingEmail] = field(default_factory=list)
    name: str = "scripted"

    def send(self, email: OutgoingEmail) -> str:
        def answer() -> str:
            failure = ANSWERS[self.script.pop(0)] if self.script else None
            if failure is not None:
                raise failure()
            self.sent.append(email)
            return "id"

        result: str = self.faults.around("send", answer)
        return result


@dataclass
class Run:
    """One job through the consumer until its queue is empty, checking after every invocation."""

    resources: Resources
    delivery: EmailDelivery
    ledger: FaultyLedger
    faults: Faults
    provider: ScriptedAnswers
    clock: Clock
    booking_id: str
    queue_arn: str
    waits: list[int] = field(default_factory=list)  # what the last invocation's messages wait

    def until_settled(self, invocations: int = 40) -> None:
        sqs = self.resources.sqs
        for _ in range(invocations):
            messages = sqs.receive_message(
                QueueUrl=self.resources.queue_url,
                MaxNumberOfMessages=10,
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            if not messages:
                return
            self.faults.invocation += 1
            event = sqs_event(messages, queue_arn=self.queue_arn, region=REGION)
            response = consume_batch(event, None, consumer_of(self.delivery))
            done = records_to_delete(event["Records"], response, report_batch_item_failures=True)
            for record in done:
                sqs.delete_message(QueueUrl=self.resources.queue_url, ReceiptHandle=record["receiptHandle"])
            for record in event["Records"]:
                if record not in done:  # its backoff (or visibility timeout) passes at once
                    sqs.change_message_visibility(
                        QueueUrl=self.resources.queue_url,
                        ReceiptHandle=record["receiptHandle"],
                        VisibilityTimeout=0,
                    )
            self.assert_no_claim_of_ours_hangs()
            self.time_passes()
        pytest.fail(f"still on the queue after {invocations} invocations")

    def time_passes(self) -> None:
        """Until the next receive: the longest any message was told to wait."""
        self.clock.advance(seconds=max(self.waits, default=0))
        self.waits.clear()

    def assert_no_claim_of_ours_hangs(self) -> None:
        item = self.resources.dynamodb.get_item(
            TableName=self.resources.table,
            Key={"booking_id": {"S": self.booking_id}, "email_key": {"S": "booking_confirmed#0"}},
        ).get("Item", {})
        token = item.get("lease_token", {}).get("S")
        hanging = item.get("status", {}).get("S") == "sending" and token in self.ledger.tokens
        assert not hanging, (
            f"claim of ours left after invocation {self.faults.invocation}: {self.faults.raised}"
        )

    def dead_letters(self) -> list[dict[str, Any]]:
        return [m for m in self.resources.drain(self.resources.dlq_url) if self.booking_id in m["Body"]]


def attributes(message: dict[str, Any]) -> dict[str, str]:
    return {k: v["StringValue"] for k, v in message.get("MessageAttributes", {}).items()}


def assert_every_letter_says_why(letters: list[dict[str, Any]], dedupe_key: str) -> None:
    for letter in letters:
        values = attributes(letter)
        assert values.get("failure_reason") in set(FailureReason), values
        assert values["attempts"].isdigit()
        assert instant_of(values["first_dead_lettered_at"]) is not None
        if values["failure_reason"] not in (FailureReason.INVALID_JSON, FailureReason.SCHEMA_INVALID):
            assert values["dedupe_key"] == dedupe_key


_bookings = itertools.count()


@pytest.fixture(scope="module")
def shared(local_template: dict[str, Any]) -> Iterator[Resources]:
    """The template's queues and tables in moto, once for this module: every run has a booking
    of its own, and these tests are many."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
        }.items():
            patch.setenv(name, value)
        patch.delenv("AWS_ENDPOINT_URL", raising=False)
        make_dynamodb_atomic()
        with mock_aws():
            yield resources_from(local_template)


@pytest.fixture
def start_run(shared: Resources, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Run]]:
    resources = shared
    queue_arn = resources.sqs.get_queue_attributes(QueueUrl=resources.queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    current: list[Faults] = []

    class FaultyParse:
        """The job model, its validation failing as planned."""

        def validate_python(self, payload: Any) -> Any:
            return current[-1].around("parse", lambda: real_job.validate_python(payload))

        def model_json_schema(self, **options: Any) -> dict[str, Any]:
            # The model's: its JSON Schema names a failure's fields in the log.
            return dict(real_job.json_schema(**options))

    real_job = delivery_module.EMAIL_JOB
    monkeypatch.setattr(delivery_module, "EMAIL_JOB", FaultyParse())

    def start(
        planned: list[Fault], answers: list[str], overrides: dict[str, Any], raw: dict[str, Any] | None = None
    ) -> Run:
        """A run of one job (``raw``: fields written into its body as they are, unchecked)."""
        resources.drain(resources.queue_url)  # what an earlier run left hopping
        metrics.clear_metrics()
        faults = Faults(planned)
        current.append(faults)
        clock = Clock()
        provider = ScriptedAnswers(faults, list(answers))
        delivery = make_delivery(resources, provider, clock, BACKOFF_BASE_SECONDS=60, LEASE_SECONDS=120)
        faulty = FaultyLedger(ledger(resources), faults)
        delivery.ledger = delivery.sending.ledger = faulty
        dispatch = delivery.dispatch
        waits: list[int] = []
        dispatch.queue = ClockedQueue(dispatch.queue, waits, faults, "requeue")
        dispatch.dlq = ClockedQueue(dispatch.dlq, waits, faults, "dead_letter")
        delivery.render = lambda job: faults.around("render", lambda: render_email(job))
        booking_id = f"bk_fault_{next(_bookings)}"
        body = {**job(booking_id=booking_id, **overrides), **(raw or {})}
        resources.sqs.send_message(QueueUrl=resources.queue_url, MessageBody=json.dumps(body))
        return Run(resources, delivery, faulty, faults, provider, clock, booking_id, queue_arn, waits)

    metrics.clear_metrics()
    yield start
    metrics.clear_metrics()


def test_a_message_the_consumer_never_decides_about_reaches_the_dlq_without_a_reason(
    shared: Resources,
) -> None:
    # Given a handler that crashes on every receive (the harness models SQS's redrive faithfully)
    body = json.dumps(job(booking_id="bk_crashing"))
    shared.sqs.send_message(QueueUrl=shared.queue_url, MessageBody=body)
    for _ in range(6):
        for message in shared.sqs.receive_message(QueueUrl=shared.queue_url).get("Messages", []):
            shared.sqs.change_message_visibility(
                QueueUrl=shared.queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
            )
    # Then SQS moved it to the DLQ after its fifth receive, with no failure_reason: what the
    # consumer must never leave to happen
    [letter] = [m for m in shared.drain(shared.dlq_url) if m["Body"] == body]
    assert "failure_reason" not in attributes(letter)


#: What makes each step happen on the first receive and on the last (the fifth): the provider's
#: answers and the job's delay. Four 503s bring a message to its last receive.
SCENARIOS: dict[tuple[str, int], tuple[list[str], int]] = {
    ("requeue", 1): ([], 20),  # a delay hop
    ("requeue", 5): (["503"] * 4 + ["429-long"], 0),  # a throttled copy
    ("dead_letter", 1): (["422"], 0),
    ("dead_letter", 5): (["503"] * 5, 0),
}


#: Every fault: each step, on the first receive and the last, as the dependency failing or our
#: own bug, before the call took effect or (where a call has one) after.
EVERY_FAULT = [
    pytest.param(
        Fault(step, invocation, bug, after),
        id=f"{step}-{'first' if invocation == 1 else 'last'}-receive-{'bug' if bug else 'dependency'}"
        f"-{'after' if after else 'before'}",
    )
    for step in STEPS
    for invocation in (1, 5)
    for bug in (False, True)
    for after in ((False, True) if step in CAN_TAKE_EFFECT else (False,))
]


@pytest.mark.parametrize("fault", EVERY_FAULT)
def test_a_fault_at_any_step_leaves_no_claim_and_no_letter_without_a_reason(
    start_run: Callable[..., Run], fault: Fault
) -> None:
    # Given a job that reaches the fault's step on its receive, and the fault there
    answers, delay_minutes = SCENARIOS.get(
        (fault.step, fault.invocation), (["503"] * (fault.invocation - 1), 0)
    )
    run = start_run([fault], answers, {"deliver_at": T0 + timedelta(minutes=delay_minutes)})
    # When it is delivered until its queue is empty
    run.until_settled()
    # Then no claim of ours was left sending after any invocation (checked as it ran), every
    # letter says why, and the email went out at most once
    assert fault in run.faults.raised
    letters = run.dead_letters()
    assert_every_letter_says_why(letters, f"{run.booking_id}#booking_confirmed#0")
    assert len(run.provider.sent) <= 1
    assert letters or run.provider.sent, "the email was neither sent nor dead-lettered"


faults = st.lists(
    st.builds(
        Fault,
        step=st.sampled_from(STEPS),
        invocation=st.integers(1, 7),
        bug=st.booleans(),
        after=st.booleans(),
    ).filter(lambda f: f.step in CAN_TAKE_EFFECT or not f.after),
    max_size=5,
    unique_by=lambda f: (f.step, f.invocation),
).filter(
    # SQS refusing both the DLQ and the queue on the same receive leaves the message to its
    # redrive: the one case the consumer cannot help (README.md, "How delivery stays exactly-once").
    lambda planned: (
        not {("requeue", f.invocation) for f in planned if f.step == "dead_letter"}
        & {(f.step, f.invocation) for f in planned}
    )
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    planned=faults,
    answers=st.lists(st.sampled_from(sorted(ANSWERS)), max_size=7),
    delay_minutes=st.sampled_from([0, 20]),
)
# Copies of one message handled together while their claim's lease is live: never sent twice.
@example(
    planned=[
        Fault("claim", 4, bug=False, after=True),
        Fault("requeue", 5, bug=False, after=True),
        Fault("requeue", 6, bug=True, after=True),
        Fault("render", 5, bug=False),
    ],
    answers=["429-long", "429"],
    delay_minutes=20,
)
def test_whatever_fails_and_whenever_no_claim_hangs_and_every_letter_says_why(
    start_run: Callable[..., Run], planned: list[Fault], answers: list[str], delay_minutes: int
) -> None:
    run = start_run(planned, answers, {"deliver_at": T0 + timedelta(minutes=delay_minutes)})
    run.until_settled()
    letters = run.dead_letters()
    assert_every_letter_says_why(letters, f"{run.booking_id}#booking_confirmed#0")
    assert len(run.provider.sent) <= 1
    assert letters or run.provider.sent, "the email was neither sent nor dead-lettered"


# -- instants at the edges of the calendar ------------------------------------------------------

#: Offsets as far as RFC 3339 allows them in practice (±14:00), and the instants a producer
#: writing straight to SQS could put in a message before the models refuse them (years 1..9999).
OFFSETS = st.sampled_from([timezone(timedelta(hours=h)) for h in (-14, -5, 0, 5, 14)])
ANY_INSTANT = st.datetimes(datetime(1, 1, 1), datetime(9999, 12, 31, 23, 59, 59), timezones=OFFSETS)
ACCEPTED = st.datetimes(datetime(2000, 1, 1), datetime(2099, 12, 31, 23, 59, 59), timezones=OFFSETS)
#: The edges themselves, where a conversion to UTC or to the guest's zone leaves the calendar.
EDGES = st.sampled_from(
    [
        datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=-14))),
        datetime(9999, 12, 31, 23, 30, tzinfo=timezone(timedelta(hours=-5))),
        datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC),
        datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14))),
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(2099, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=-14))),
        datetime(2000, 1, 1, tzinfo=timezone(timedelta(hours=14))),
    ]
)


def test_a_starts_at_past_the_calendar_in_utc_is_schema_invalid_at_once_never_a_hanging_claim(
    start_run: Callable[..., Run],
) -> None:
    # Given a job whose starts_at is past year 9999 once in UTC (and outside the years 2000 to
    # 2099 that an instant is written with)
    data = {"restaurant_name": "Casa Lucio", "party_size": 4, "reference": "R-1"}
    run = start_run([], [], {"data": {**data, "starts_at": "9999-12-31T23:30:00-05:00"}})
    # When it is delivered
    run.until_settled()
    # Then it was received once and dead-lettered by the consumer as schema_invalid, unclaimed
    assert run.faults.invocation == 1
    [letter] = run.dead_letters()
    assert attributes(letter)["failure_reason"] == "schema_invalid"
    assert run.provider.sent == []


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    deliver_at=st.one_of(EDGES, ANY_INSTANT, ACCEPTED),
    not_after=st.none() | EDGES | ANY_INSTANT,
    starts_at=st.one_of(EDGES, ANY_INSTANT, ACCEPTED),
    answers=st.lists(st.sampled_from(sorted(ANSWERS)), max_size=2),
)
def test_no_instant_a_message_can_carry_overflows_hops_backoff_retention_or_expiry(
    start_run: Callable[..., Run],
    deliver_at: datetime,
    not_after: datetime | None,
    starts_at: datetime,
    answers: list[str],
) -> None:
    # Given a job carrying those instants, as a producer could write them straight to SQS
    data = {
        "restaurant_name": "Casa Lucio",
        "party_size": 4,
        "reference": "R-1",
        "starts_at": starts_at.isoformat(),
    }
    raw = {"data": data, "deliver_at": deliver_at.isoformat()}
    if not_after is not None:
        raw["not_after"] = not_after.isoformat()
    run = start_run([], answers, {}, raw)
    # When it is received (a few times at most: a far deliver_at hops for ever)
    for _ in range(3):
        run.faults.invocation += 1
        messages = run.resources.sqs.receive_message(
            QueueUrl=run.resources.queue_url,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            break
        event = sqs_event(messages, queue_arn=run.queue_arn, region=REGION)
        response = consume_batch(event, None, consumer_of(run.delivery))
        # Then nothing was left to SQS for want of a decision, and no claim of ours hangs
        assert response == {"batchItemFailures": []} or "503" in answers
        run.assert_no_claim_of_ours_hangs()
        run.time_passes()
        for record in records_to_delete(event["Records"], response, report_batch_item_failures=True):
            run.resources.sqs.delete_message(
                QueueUrl=run.resources.queue_url, ReceiptHandle=record["receiptHandle"]
            )
    assert_every_letter_says_why(run.dead_letters(), f"{run.booking_id}#booking_confirmed#0")
    # And nothing of it was a failure the consumer had no rule for
    assert "EmailUnexpectedFailure" not in metrics.metric_set
