"""A worker killed between claim and send, and one killed between send and record: the next
worker takes the expired lease over and the guest still gets exactly one email.

Real parts: moto for the ledger and queues, the Resend provider over httpx against the HTTP
provider double on loopback (which honours idempotency keys like Resend).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from booking_durability.emails.delivery import EmailOutcome, IncomingMessage, outgoing_email
from booking_durability.emails.models import EMAIL_JOB, EmailRef
from booking_durability.emails.providers.base import OutgoingEmail
from booking_durability.emails.providers.resend import ResendProvider
from booking_durability.emails.rendering import render_email
from devstack.http_provider import HttpProviderDouble
from tests.builders import T0, job
from tests.integration.conftest import Clock, Resources, ledger, make_delivery

API_KEY = "re_takeover"


@pytest.fixture
def double() -> Iterator[HttpProviderDouble]:
    with HttpProviderDouble(api_key=API_KEY) as running:
        yield running


@pytest.fixture
def resend(double: HttpProviderDouble) -> ResendProvider:
    return ResendProvider(API_KEY, base_url=double.url, timeout_seconds=5)


def incoming(body: str) -> IncomingMessage:
    return IncomingMessage("m-1", "rh-1", body, receive_count=2)


def test_killed_between_claim_and_send_is_taken_over_and_sent_once(
    resources: Resources, double: HttpProviderDouble, resend: ResendProvider
) -> None:
    # Given a worker claimed the key and died before calling the provider
    clock = Clock()
    ledger(resources).claim(EmailRef("bk_123", "booking_confirmed", 0), "j", T0, T0, 120)
    body = json.dumps(job())
    delivery = make_delivery(resources, resend, clock, LEASE_SECONDS=120)
    # When its message comes back while the lease is live, it waits; once it has expired, it is sent
    assert delivery.deliver(incoming(body)) is EmailOutcome.DEFERRED
    clock.advance(seconds=121)
    assert delivery.deliver(incoming(body)) is EmailOutcome.SENT
    # Then the provider saw one delivery under the dedupe key
    assert [d.idempotency_key for d in double.deliveries] == ["bk_123#booking_confirmed#0"]
    assert resources.status("bk_123", "booking_confirmed#0") == "sent"


def test_killed_between_send_and_record_is_sent_once(
    resources: Resources, double: HttpProviderDouble, resend: ResendProvider
) -> None:
    # Given a worker claimed, sent through the provider, and died before recording "sent"
    clock = Clock()
    body = json.dumps(job())
    parsed = EMAIL_JOB.validate_json(body)
    ledger(resources).claim(EmailRef("bk_123", "booking_confirmed", 0), "j", T0, T0, 120)
    delivery = make_delivery(resources, resend, clock, LEASE_SECONDS=120)
    resend.send(outgoing_email(parsed, render_email(parsed), delivery.sending.sender))
    # When the lease expires and SQS redelivers
    clock.advance(seconds=121)
    assert delivery.deliver(incoming(body)) is EmailOutcome.SENT
    # Then the provider's idempotency kept it to one email, and the ledger says sent
    assert len(double.deliveries) == 1
    assert double.attempts("bk_123#booking_confirmed#0") == 2
    assert resources.status("bk_123", "booking_confirmed#0") == "sent"


def test_a_retry_with_a_different_payload_counts_as_already_sent(
    resources: Resources, double: HttpProviderDouble, resend: ResendProvider
) -> None:
    # Given the first worker's send went out with content that differs from ours (Resend's 409
    # invalid_idempotent_request): the email reached the guest, so it counts as sent
    clock = Clock()
    parsed = EMAIL_JOB.validate_json(json.dumps(job()))
    resend.send(
        OutgoingEmail(
            dedupe_key=parsed.dedupe_key,
            job_id="another-job",
            sender="Bookings <bookings@booking.local>",
            to_email=str(parsed.recipient.email),
            to_name=None,
            subject="an older rendering",
            html="<p>older</p>",
            text="older",
        )
    )
    delivery = make_delivery(resources, resend, clock)
    assert delivery.deliver(incoming(json.dumps(job()))) is EmailOutcome.SENT
    assert len(double.deliveries) == 1
    assert resources.status("bk_123", "booking_confirmed#0") == "sent"
