"""The SMTP provider through the real mail sink on loopback: what the guest's mailbox gets, and
what each injected fault becomes for the consumer (docs/reference/queue-message.md#failure-handling,
docs/reference/local-stack.md#fault-injection).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from booking_durability.emails.providers.base import (
    PermanentProviderError,
    ProviderThrottled,
    TransientProviderError,
)
from booking_durability.emails.providers.smtp import SmtpProvider
from devstack.mail_sink import MailSink
from tests.integration.provider_fixtures import (
    GUEST_NAME,
    SENDER,
    assert_reveals_nothing,
    guest_address,
    guest_email,
    personal_fragments,
    running_mail_sink,
)


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[MailSink]:
    with running_mail_sink(tmp_path) as running:
        yield running


@pytest.fixture
def provider(sink: MailSink) -> SmtpProvider:
    return SmtpProvider(sink.host, sink.port, timeout_seconds=5)


def test_delivered_email_lands_in_the_maildir_with_the_contract_headers(
    sink: MailSink, provider: SmtpProvider
) -> None:
    # Given a confirmation for the guest
    outgoing = guest_email()

    # When the SMTP provider sends it
    returned = provider.send(outgoing)

    # Then the Maildir holds one message with every header the contract promises
    (message,) = sink.messages()
    assert returned == outgoing.message_id
    assert message["Delivered-To"] == guest_address()
    assert message["Message-ID"] == outgoing.message_id
    assert message["X-Dedupe-Key"] == "bk-1001#booking_confirmed#0"
    assert message["X-Job-Id"] == outgoing.job_id
    assert message["From"] == SENDER
    assert message["To"].addresses[0].display_name == GUEST_NAME
    assert message["To"].addresses[0].addr_spec == guest_address()
    assert message["Subject"] == outgoing.subject
    assert message["Date"] is not None
    # and the guest sees both bodies, accents intact
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert text is not None
    assert html is not None
    assert text.get_content().strip() == outgoing.text
    assert html.get_content().strip() == outgoing.html
    assert {"tmp", "new", "cur"} <= {entry.name for entry in sink.maildir_path.iterdir()}


def test_sending_the_same_email_again_is_accepted_but_not_stored_twice(
    sink: MailSink, provider: SmtpProvider
) -> None:
    # Given an email already delivered
    outgoing = guest_email()
    provider.send(outgoing)

    # When a retry sends it again
    provider.send(outgoing)

    # Then the guest has one copy, and the mail log shows both transactions
    assert len(sink.messages()) == 1
    assert [(entry["code"], entry["stored"]) for entry in sink.mail_log()] == [(250, True), (250, False)]


def test_transient_tag_fails_the_first_attempts_then_delivers_once(
    sink: MailSink, provider: SmtpProvider
) -> None:
    # Given a recipient tagged to fail twice with 451
    outgoing = guest_email("transient2")

    # When the consumer retries until it goes through
    failures = []
    for _ in range(2):
        with pytest.raises(TransientProviderError) as raised:
            provider.send(outgoing)
        failures.append(raised.value)
    provider.send(outgoing)

    # Then the first two were transient 451s, and the guest gets exactly one copy
    assert [failure.status for failure in failures] == [451, 451]
    for failure in failures:
        assert_reveals_nothing(failure, outgoing)
    assert len(sink.messages()) == 1
    assert [entry["code"] for entry in sink.mail_log()] == [451, 451, 250]


def test_throttle_tag_is_throttled_without_a_retry_after(sink: MailSink, provider: SmtpProvider) -> None:
    # Given a recipient tagged to be throttled once
    outgoing = guest_email("throttle1")

    # When it is sent twice
    with pytest.raises(ProviderThrottled) as raised:
        provider.send(outgoing)
    provider.send(outgoing)

    # Then the first is a 421 the consumer backs off from with the stage's throttle backoff
    assert raised.value.status == 421
    assert raised.value.retry_after is None
    assert_reveals_nothing(raised.value, outgoing)
    assert len(sink.messages()) == 1


def test_permanent_tag_is_refused_every_time_and_never_stored(sink: MailSink, provider: SmtpProvider) -> None:
    # Given a recipient the server always refuses
    outgoing = guest_email("permanent")

    # When it is sent (and, say, redriven later)
    for _ in range(2):
        with pytest.raises(PermanentProviderError) as raised:
            provider.send(outgoing)
        # Then each attempt is a permanent 550, saying nothing of the guest
        assert raised.value.status == 550
        assert_reveals_nothing(raised.value, outgoing)
    assert sink.messages() == []


def test_mail_log_names_messages_but_never_the_guest(sink: MailSink, provider: SmtpProvider) -> None:
    # Given deliveries, repeats and refusals
    outgoing = guest_email("transient1")
    with pytest.raises(TransientProviderError):
        provider.send(outgoing)
    provider.send(outgoing)
    provider.send(outgoing)

    # Then every mail log line identifies the message by its ids alone
    raw = sink.mail_log_path.read_text(encoding="utf-8")
    for fragment in personal_fragments(outgoing):
        assert fragment not in raw
    for entry in sink.mail_log():
        assert set(entry) == {"received_at", "message_id", "dedupe_key", "code", "stored"}
        assert entry["message_id"] == outgoing.message_id
        assert entry["dedupe_key"] == outgoing.dedupe_key


def test_unreachable_server_is_transient() -> None:
    # Given nothing listens on the port
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    outgoing = guest_email()

    # When the email is sent, then the consumer retries later
    with pytest.raises(TransientProviderError) as raised:
        SmtpProvider("127.0.0.1", free_port, timeout_seconds=2).send(outgoing)
    assert raised.value.status is None
    assert_reveals_nothing(raised.value, outgoing)
