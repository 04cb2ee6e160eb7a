"""The three providers map every provider answer to the consumer's outcome
(docs/reference/queue-message.md#failure-handling), and no error they raise says anything about the
guest. No network: respx for Resend, moto and botocore's Stubber for SES, a scripted smtplib for SMTP.
"""

from __future__ import annotations

import dataclasses
import email
import hashlib
import json
import smtplib
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import default as default_policy
from email.utils import format_datetime
from typing import Any

import boto3
import httpx
import pytest
import respx
from botocore.exceptions import EndpointConnectionError, ReadTimeoutError
from botocore.stub import Stubber
from hypothesis import given, settings
from hypothesis import strategies as st
from moto import mock_aws

import booking_durability
from booking_durability.emails.providers import build_provider
from booking_durability.emails.providers import smtp as smtp_module
from booking_durability.emails.providers.base import (
    MAX_RETRY_AFTER_SECONDS,
    AlreadyDelivered,
    PermanentProviderError,
    ProviderError,
    ProviderNotConfigured,
    ProviderThrottled,
    TransientProviderError,
)
from booking_durability.emails.providers.resend import ResendProvider, display_address, parse_retry_after
from booking_durability.emails.providers.ses import SesProvider
from booking_durability.emails.providers.smtp import SmtpProvider, build_message
from booking_durability.settings.email_consumer import ConsumerSettings
from tests.integration.provider_fixtures import (
    GUEST_NAME,
    SENDER,
    assert_reveals_nothing,
    guest_address,
    guest_email,
)

RESEND_URL = "https://resend.test"
REGION = "eu-west-1"


def echo_of_the_address() -> str:
    """Provider text as real providers write it: it names the recipient."""
    return f"The `to` field is invalid: {GUEST_NAME} <{guest_address()}> bounced"


# ---------------------------------------------------------------- Resend


@pytest.fixture
def resend() -> ResendProvider:
    return ResendProvider("re_test_key", base_url=RESEND_URL, timeout_seconds=2.0)


@respx.mock
def test_resend_sends_the_email_with_the_dedupe_key_as_idempotency_key(resend: ResendProvider) -> None:
    # Given Resend accepts the email
    route = respx.post(f"{RESEND_URL}/emails").mock(return_value=httpx.Response(200, json={"id": "re-123"}))
    outgoing = guest_email()

    # When it is sent
    provider_id = resend.send(outgoing)

    # Then Resend's id comes back and the request is what Resend documents
    assert provider_id == "re-123"
    request = route.calls.last.request
    assert request.headers["Authorization"] == "Bearer re_test_key"
    assert request.headers["Idempotency-Key"] == "bk-1001#booking_confirmed#0"
    assert request.headers["User-Agent"] == f"booking-durability/{booking_durability.__version__}"
    assert json.loads(request.content) == {
        "from": SENDER,
        "to": [f"{GUEST_NAME} <{guest_address()}>"],
        "subject": outgoing.subject,
        "html": outgoing.html,
        "text": outgoing.text,
        "headers": {
            "Message-ID": outgoing.message_id,
            "X-Dedupe-Key": "bk-1001#booking_confirmed#0",
            "X-Job-Id": outgoing.job_id,
        },
    }


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (None, "ana@example.test"),
        ("Ana Pérez", "Ana Pérez <ana@example.test>"),
        ('Pérez, Ana "La Jefa"', '"Pérez, Ana \\"La Jefa\\"" <ana@example.test>'),
    ],
)
def test_resend_recipient_is_a_bare_address_or_a_safely_quoted_name(name: str | None, expected: str) -> None:
    assert display_address(name, "ana@example.test") == expected


@respx.mock
def test_resend_reuses_one_client_across_sends(resend: ResendProvider) -> None:
    # Given a provider that has not sent yet
    respx.post(f"{RESEND_URL}/emails").mock(return_value=httpx.Response(200, json={"id": "re-1"}))

    # When it sends twice
    resend.send(guest_email())
    first_client = resend.client
    resend.send(guest_email())

    # Then both sends went through the same pooled client
    assert resend.client is first_client
    resend.client.close()


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "7"}, 7.0),
        ({"retry-after": "0.5"}, 0.5),
        ({}, None),
        ({"retry-after": "soon"}, None),
        # Capped at an hour before anything adds it to a date
        ({"retry-after": "86400"}, 3600.0),
        ({"retry-after": "9" * 400}, 3600.0),
        ({"retry-after": "Fri, 31 Dec 9999 23:59:59 GMT"}, 3600.0),
        ({"retry-after": "1e400"}, None),
    ],
)
@respx.mock
def test_resend_429_is_throttled_with_its_retry_after(
    resend: ResendProvider, headers: dict[str, str], expected: float | None
) -> None:
    # Given Resend answers 429
    respx.post(f"{RESEND_URL}/emails").mock(
        return_value=httpx.Response(429, headers=headers, json={"name": "rate_limit_exceeded"})
    )

    # When the email is sent, then the consumer is told to wait what Resend asked (or its own backoff)
    with pytest.raises(ProviderThrottled) as raised:
        resend.send(guest_email())
    assert raised.value.status == 429
    assert raised.value.retry_after == expected


#: What a header value can be on the wire: printable ASCII (httpx sends nothing else).
HEADER_VALUES = st.one_of(
    st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E)),
    st.from_regex(r"\A[+-]?[0-9]{1,500}(\.[0-9]{0,20})?\Z"),
    st.datetimes(timezones=st.just(UTC)).map(lambda moment: format_datetime(moment, usegmt=True)),
    st.sampled_from(
        ["inf", "-inf", "nan", "1e309", "0x10", "1_000", "  3  ", "Mon, 01 Jan 10000 00:00:00 GMT"]
    ),
)


@settings(deadline=None)  # a shared machine is slow at times: no timing here
@given(value=st.one_of(st.text(), HEADER_VALUES))
def test_any_retry_after_header_is_a_wait_of_at_most_an_hour_or_none_and_never_raises(value: str) -> None:
    seconds = parse_retry_after(value, now=datetime(2026, 3, 1, tzinfo=UTC))
    assert seconds is None or 0.0 <= seconds <= MAX_RETRY_AFTER_SECONDS


@settings(max_examples=60, deadline=None)
@given(value=HEADER_VALUES)
def test_resend_throttles_with_a_bounded_wait_whatever_retry_after_it_sends(value: str) -> None:
    with respx.mock:
        respx.post(f"{RESEND_URL}/emails").mock(
            return_value=httpx.Response(429, headers={"retry-after": value.strip()}, json={})
        )
        with pytest.raises(ProviderThrottled) as raised:
            ResendProvider("re_test", base_url=RESEND_URL).send(guest_email())
    wait = raised.value.retry_after
    assert wait is None or 0.0 <= wait <= MAX_RETRY_AFTER_SECONDS


@settings(deadline=None)  # a shared machine is slow at times: no timing here
@given(seconds=st.one_of(st.none(), st.floats(), st.integers(min_value=-(10**400), max_value=10**400)))
def test_a_throttle_waits_at_most_an_hour_whoever_made_it(seconds: float | None) -> None:
    wait = ProviderThrottled("any", 429, retry_after=seconds).retry_after
    assert wait is None or 0.0 <= wait <= MAX_RETRY_AFTER_SECONDS


def test_retry_after_as_an_http_date_is_the_seconds_until_then() -> None:
    now = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("Sun, 01 Mar 2026 12:00:30 GMT", now=now) == 30.0
    assert parse_retry_after("Sun, 01 Mar 2026 11:59:00 GMT", now=now) == 0.0
    assert parse_retry_after("-5") == 0.0
    assert parse_retry_after("nan") is None


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (409, {"name": "invalid_idempotent_request"}, AlreadyDelivered),
        (409, {"name": "concurrent_idempotent_requests"}, TransientProviderError),
        (409, {"name": "something_else"}, PermanentProviderError),
        (401, {"name": "missing_api_key"}, TransientProviderError),
        (403, {"name": "invalid_api_key"}, TransientProviderError),
        (500, {"name": "internal_server_error"}, TransientProviderError),
        (502, None, TransientProviderError),
        (503, None, TransientProviderError),
        (400, {"name": "validation_error"}, PermanentProviderError),
        (404, None, PermanentProviderError),
        (422, {"name": "validation_error"}, PermanentProviderError),
    ],
)
@respx.mock
def test_resend_answers_map_to_the_consumer_outcome(
    resend: ResendProvider, status: int, body: dict[str, str] | None, expected: type[ProviderError]
) -> None:
    # Given Resend answers with this status, its message echoing the guest's address
    document = None if body is None else {**body, "statusCode": status, "message": echo_of_the_address()}
    response = httpx.Response(status, json=document) if document else httpx.Response(status, text="<html/>")
    respx.post(f"{RESEND_URL}/emails").mock(return_value=response)
    outgoing = guest_email()

    # When the email is sent
    with pytest.raises(ProviderError) as raised:
        resend.send(outgoing)

    # Then the outcome is the contract's, with the status and without the guest
    assert type(raised.value) is expected
    assert raised.value.status == status
    assert raised.value.provider == "resend"
    assert_reveals_nothing(raised.value, outgoing)


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ReadTimeout("timed out reading"),
        httpx.ConnectTimeout("timed out connecting"),
        httpx.ConnectError(f"cannot reach {guest_address()}"),
        httpx.RemoteProtocolError("server disconnected"),
    ],
)
@respx.mock
def test_resend_timeouts_and_connection_errors_are_transient(
    resend: ResendProvider, failure: Exception
) -> None:
    # Given the request never gets an answer
    respx.post(f"{RESEND_URL}/emails").mock(side_effect=failure)
    outgoing = guest_email()

    # When the email is sent, then it is retried later, and httpx's error is not carried along
    with pytest.raises(TransientProviderError) as raised:
        resend.send(outgoing)
    assert raised.value.status is None
    assert_reveals_nothing(raised.value, outgoing)


def test_resend_refuses_to_start_without_an_api_key() -> None:
    with pytest.raises(ValueError, match="API key"):
        ResendProvider("")


# ---------------------------------------------------------------- SES


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)


def test_ses_sends_text_html_and_our_headers_through_sesv2(aws_env: None) -> None:
    with mock_aws():
        # Given SES with the sender's domain verified
        client = boto3.client("sesv2", region_name=REGION)
        client.create_email_identity(EmailIdentity="booking.local")
        provider = SesProvider(client)
        stubbed_request: dict[str, Any] = {}
        client.meta.events.register(
            "provide-client-params.sesv2.SendEmail", lambda params, **_: stubbed_request.update(params)
        )
        outgoing = guest_email()

        # When the email is sent
        message_id = provider.send(outgoing)

        # Then SES accepted it and the request carried the simple content and our headers
        assert message_id
        simple = stubbed_request["Content"]["Simple"]
        assert simple["Body"]["Text"]["Data"] == outgoing.text
        assert simple["Body"]["Html"]["Data"] == outgoing.html
        assert simple["Headers"] == [
            {"Name": "X-Dedupe-Key", "Value": "bk-1001#booking_confirmed#0"},
            {"Name": "X-Job-Id", "Value": outgoing.job_id},
        ]
        # Non-ASCII display names go MIME-encoded, as SES requires
        (to_address,) = stubbed_request["Destination"]["ToAddresses"]
        assert to_address.endswith(f"<{guest_address()}>")
        assert to_address.startswith("=?utf-8?")


def test_ses_rejection_of_an_unverified_sender_is_permanent(aws_env: None) -> None:
    with mock_aws():
        # Given SES where nothing is verified (moto's message echoes the address it rejects)
        provider = SesProvider(boto3.client("sesv2", region_name=REGION))
        outgoing = guest_email()

        # When the email is sent, then it is refused for good, saying nothing of the guest
        with pytest.raises(PermanentProviderError) as raised:
            provider.send(outgoing)
        assert raised.value.status == 400
        assert_reveals_nothing(raised.value, outgoing)


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("TooManyRequestsException", 429, ProviderThrottled),
        ("Throttling", 400, ProviderThrottled),
        ("LimitExceededException", 400, ProviderThrottled),
        ("MessageRejected", 400, PermanentProviderError),
        ("MailFromDomainNotVerifiedException", 400, TransientProviderError),
        ("BadRequestException", 400, PermanentProviderError),
        ("NotFoundException", 404, TransientProviderError),
        ("AccountSuspendedException", 400, TransientProviderError),
        ("SendingPausedException", 400, TransientProviderError),
        ("InternalFailure", 500, TransientProviderError),
        ("ServiceUnavailable", 503, TransientProviderError),
        ("AccessDeniedException", 403, TransientProviderError),
        ("UnrecognizedClientException", 403, TransientProviderError),
        ("SomethingNewException", 400, PermanentProviderError),
    ],
)
def test_ses_errors_map_to_the_consumer_outcome(
    aws_env: None, code: str, status: int, expected: type[ProviderError]
) -> None:
    # Given SES answers with this error, its message echoing the guest's address
    client = boto3.client("sesv2", region_name=REGION)
    provider = SesProvider(client)
    outgoing = guest_email()
    with Stubber(client) as stubber:
        stubber.add_client_error(
            "send_email",
            service_error_code=code,
            service_message=echo_of_the_address(),
            http_status_code=status,
        )

        # When the email is sent
        with pytest.raises(ProviderError) as raised:
            provider.send(outgoing)

    # Then the outcome is the contract's, and nothing of the guest comes with it
    assert type(raised.value) is expected
    assert raised.value.status == status
    if expected is ProviderThrottled:
        assert raised.value.retry_after is None  # type: ignore[attr-defined]
    assert_reveals_nothing(raised.value, outgoing)


@pytest.mark.parametrize(
    "failure",
    [
        EndpointConnectionError(endpoint_url="https://email.eu-west-1.amazonaws.com"),
        ReadTimeoutError(endpoint_url="https://email.eu-west-1.amazonaws.com"),
    ],
)
def test_ses_connection_errors_and_timeouts_are_transient(aws_env: None, failure: Exception) -> None:
    # Given the SES endpoint cannot be reached
    client = boto3.client("sesv2", region_name=REGION)

    def unreachable(**_: object) -> None:
        raise failure

    client.meta.events.register("before-send.sesv2.SendEmail", unreachable)
    provider = SesProvider(client)
    outgoing = guest_email()

    # When the email is sent, then it is retried later
    with pytest.raises(TransientProviderError) as raised:
        provider.send(outgoing)
    assert_reveals_nothing(raised.value, outgoing)


def test_ses_request_that_fails_validation_is_permanent(aws_env: None) -> None:
    # Given an email botocore refuses before sending (SES headers may not be empty)
    client = boto3.client("sesv2", region_name=REGION)

    def never_sent(**_: object) -> None:
        raise AssertionError("an invalid request must not reach SES")

    client.meta.events.register("before-send.sesv2.SendEmail", never_sent)
    provider = SesProvider(client)
    outgoing = guest_email(job_id="")

    # When it is sent, then it will never succeed and is dead-lettered
    with pytest.raises(PermanentProviderError) as raised:
        provider.send(outgoing)
    assert_reveals_nothing(raised.value, outgoing)


def test_ses_client_makes_a_single_attempt_per_send(aws_env: None) -> None:
    # Given a provider that creates its own client
    provider = SesProvider(timeout_seconds=3)

    # Then botocore does not resend on its own (SES has no idempotency key)
    config = provider.client.meta.config
    assert config.retries["total_max_attempts"] == 1
    assert config.read_timeout == 3


# ---------------------------------------------------------------- SMTP


def test_smtp_message_carries_the_contract_headers_and_both_bodies() -> None:
    # Given a rendered email
    outgoing = guest_email()

    # When the MIME message is built
    message = build_message(outgoing, sent_at=datetime(2026, 3, 1, 12, 0, tzinfo=UTC))

    # Then it has the headers every delivered message carries
    # (docs/reference/queue-message.md#message-headers)
    expected_id = f"<{hashlib.sha256(b'bk-1001#booking_confirmed#0').hexdigest()}@booking.local>"
    assert message["Message-ID"] == expected_id
    assert message["X-Dedupe-Key"] == "bk-1001#booking_confirmed#0"
    assert message["X-Job-Id"] == outgoing.job_id
    assert message["From"] == SENDER
    assert message["To"].addresses[0].addr_spec == guest_address()
    assert message["To"].addresses[0].display_name == GUEST_NAME
    assert message["Subject"] == outgoing.subject
    assert message["Date"].datetime == datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    # and survives the wire as multipart/alternative, text then HTML
    parsed = email.message_from_bytes(message.as_bytes(), policy=default_policy)
    assert parsed.get_content_type() == "multipart/alternative"
    assert isinstance(parsed, EmailMessage)
    parts = [(part.get_content_type(), part.get_content().strip()) for part in parsed.iter_parts()]
    assert parts == [("text/plain", outgoing.text), ("text/html", outgoing.html)]


class ScriptedSMTP:
    """Stands in for ``smtplib.SMTP``: records the session and fails where the script says."""

    sessions: list[ScriptedSMTP] = []
    fail_at: str | None = None
    failure: BaseException | None = None

    def __init__(self, *, local_hostname: str | None = None, timeout: float | None = None) -> None:
        self.local_hostname = local_hostname
        self.timeout = timeout
        self.calls: list[str] = []
        self.sent: list[tuple[EmailMessage, str, list[str]]] = []
        ScriptedSMTP.sessions.append(self)

    def _step(self, name: str) -> None:
        self.calls.append(name)
        if ScriptedSMTP.fail_at == name and ScriptedSMTP.failure is not None:
            raise ScriptedSMTP.failure

    def connect(self, host: str, port: int) -> None:
        self._step("connect")

    def starttls(self, context: object = None) -> None:
        self._step("starttls")

    def login(self, user: str, password: str) -> None:
        self._step("login")

    def send_message(self, message: EmailMessage, from_addr: str, to_addrs: list[str]) -> None:
        self._step("send_message")
        self.sent.append((message, from_addr, to_addrs))

    def quit(self) -> None:
        self.calls.append("quit")

    def close(self) -> None:
        self.calls.append("close")


@pytest.fixture
def scripted_smtp(monkeypatch: pytest.MonkeyPatch) -> type[ScriptedSMTP]:
    ScriptedSMTP.sessions = []
    ScriptedSMTP.fail_at = None
    ScriptedSMTP.failure = None
    monkeypatch.setattr(smtp_module.smtplib, "SMTP", ScriptedSMTP)
    return ScriptedSMTP


def test_smtp_sends_with_starttls_and_login_only_when_configured(scripted_smtp: type[ScriptedSMTP]) -> None:
    # Given one relay with TLS and credentials and one without
    secured = SmtpProvider("smtp.test", 587, starttls=True, username="relay-user", password="pw")
    plain = SmtpProvider("127.0.0.1", 1025)

    # When each sends the email
    secured.send(guest_email())
    plain.send(guest_email())

    # Then only the configured one upgrades and logs in, both send to the guest and say goodbye
    secured_session, plain_session = scripted_smtp.sessions
    assert secured_session.calls == ["connect", "starttls", "login", "send_message", "quit"]
    assert plain_session.calls == ["connect", "send_message", "quit"]
    _, envelope_from, recipients = plain_session.sent[0]
    assert envelope_from == "bookings@booking.local"
    assert recipients == [guest_address()]
    # EHLO names the sender's domain rather than asking DNS for ours
    assert plain_session.local_hostname == "booking.local"


def test_smtp_returns_the_message_id(scripted_smtp: type[ScriptedSMTP]) -> None:
    outgoing = guest_email()
    assert SmtpProvider("127.0.0.1", 1025).send(outgoing) == outgoing.message_id


ECHO = echo_of_the_address().encode()


def _refused(code: int) -> smtplib.SMTPRecipientsRefused:
    return smtplib.SMTPRecipientsRefused({guest_address(): (code, ECHO)})


@pytest.mark.parametrize(
    ("step", "failure", "expected", "status"),
    [
        ("send_message", _refused(421), ProviderThrottled, 421),
        ("send_message", _refused(450), TransientProviderError, 450),
        ("send_message", _refused(550), PermanentProviderError, 550),
        ("send_message", smtplib.SMTPDataError(421, ECHO), ProviderThrottled, 421),
        (
            "send_message",
            smtplib.SMTPDataError(451, ECHO),
            TransientProviderError,
            451,
        ),
        (
            "send_message",
            smtplib.SMTPDataError(554, ECHO),
            PermanentProviderError,
            554,
        ),
        (
            "send_message",
            smtplib.SMTPSenderRefused(530, b"5.7.0 Authentication required", "bookings@booking.local"),
            TransientProviderError,
            530,
        ),
        (
            "login",
            smtplib.SMTPAuthenticationError(535, b"5.7.8 bad"),
            TransientProviderError,
            535,
        ),
        ("connect", smtplib.SMTPConnectError(421, b"too busy"), ProviderThrottled, 421),
        ("connect", smtplib.SMTPConnectError(554, b"no service"), TransientProviderError, 554),
        ("connect", ConnectionRefusedError(111, "Connection refused"), TransientProviderError, None),
        ("connect", TimeoutError("timed out"), TransientProviderError, None),
        (
            "send_message",
            smtplib.SMTPServerDisconnected(f"lost while sending to {guest_address()}"),
            TransientProviderError,
            None,
        ),
    ],
)
def test_smtp_replies_map_to_the_consumer_outcome(
    scripted_smtp: type[ScriptedSMTP],
    step: str,
    failure: BaseException,
    expected: type[ProviderError],
    status: int | None,
) -> None:
    # Given the relay fails at this step (smtplib's error naming the guest)
    scripted_smtp.fail_at, scripted_smtp.failure = step, failure
    outgoing = guest_email()

    # When the email is sent
    with pytest.raises(ProviderError) as raised:
        SmtpProvider("127.0.0.1", 1025, username="relay-user", password="pw").send(outgoing)

    # Then the outcome is the contract's: 421 throttled, 4xx transient, 5xx permanent (auth aside)
    assert type(raised.value) is expected
    assert raised.value.status == status
    if expected is ProviderThrottled:
        assert raised.value.retry_after is None  # type: ignore[attr-defined]
    assert_reveals_nothing(raised.value, outgoing)
    # and the failed session is dropped without waiting on a QUIT
    assert scripted_smtp.sessions[0].calls[-1] == "close"


def test_smtp_international_address_without_smtputf8_is_permanent(scripted_smtp: type[ScriptedSMTP]) -> None:
    # Given a relay without SMTPUTF8 and a guest whose address is not ASCII
    scripted_smtp.fail_at = "send_message"
    scripted_smtp.failure = smtplib.SMTPNotSupportedError("One or more source or delivery addresses require")
    outgoing = dataclasses.replace(guest_email(), to_email="zoë.private@guest-mail.test")

    # When it is sent, then it can never go through this relay
    with pytest.raises(PermanentProviderError) as raised:
        SmtpProvider("127.0.0.1", 1025).send(outgoing)
    assert_reveals_nothing(raised.value, outgoing)


def test_smtp_name_that_would_inject_a_header_is_refused_before_connecting(
    scripted_smtp: type[ScriptedSMTP],
) -> None:
    # Given a name with a line break in it
    outgoing = guest_email(name=f"{GUEST_NAME}\r\nBcc: someone@else.test")

    # When it is sent, then nothing is sent and the email is refused for good
    with pytest.raises(PermanentProviderError) as raised:
        SmtpProvider("127.0.0.1", 1025).send(outgoing)
    assert scripted_smtp.sessions == []
    assert_reveals_nothing(raised.value, outgoing)


# ---------------------------------------------------------------- choosing a provider


def consumer_settings(**env: str) -> ConsumerSettings:
    base = {
        "EMAIL_QUEUE_URL": "http://127.0.0.1:4566/000000000000/email",
        "STAGE": "test",
        "DELIVERIES_TABLE": "deliveries",
        "EMAIL_DLQ_URL": "http://127.0.0.1:4566/000000000000/email-dlq",
    }
    return ConsumerSettings(**{name.lower(): value for name, value in {**base, **env}.items()})


@respx.mock
def test_build_provider_makes_resend_with_the_secret_key_and_the_stage_url() -> None:
    # Given the stage chooses Resend behind a custom base URL
    settings = consumer_settings(EMAIL_PROVIDER="resend", RESEND_BASE_URL="http://127.0.0.1:8030")
    route = respx.post("http://127.0.0.1:8030/emails").mock(
        return_value=httpx.Response(200, json={"id": "x"})
    )

    # When the provider is built from the secret and sends
    provider = build_provider(settings, {"api_key": "re_from_secret"})
    provider.send(guest_email())

    # Then it is Resend, authenticated with the secret's key
    assert provider.name == "resend"
    assert route.calls.last.request.headers["Authorization"] == "Bearer re_from_secret"


@pytest.mark.parametrize("credentials", [{"username": "nobody"}, {"api_key": ""}, {"api_key": "  "}])
def test_build_provider_without_a_resend_key_is_not_configured_naming_the_key_only(
    credentials: dict[str, str],
) -> None:
    with pytest.raises(ProviderNotConfigured, match="no_api_key") as raised:
        build_provider(consumer_settings(EMAIL_PROVIDER="resend"), credentials)
    assert raised.value.cause == "no_api_key"
    assert "nobody" not in str(raised.value)


def test_build_provider_makes_smtp_with_optional_login(scripted_smtp: type[ScriptedSMTP]) -> None:
    # Given the stage chooses SMTP on a relay port, with and without credentials
    settings = consumer_settings(EMAIL_PROVIDER="smtp", SMTP_HOST="relay.test", SMTP_PORT="2525")

    # When providers are built and send
    build_provider(settings, {}).send(guest_email())
    build_provider(settings, {"username": "relay-user", "password": "pw"}).send(guest_email())

    # Then only the one with credentials logs in
    anonymous, authenticated = scripted_smtp.sessions
    assert "login" not in anonymous.calls
    assert "login" in authenticated.calls


def test_build_provider_makes_ses_without_credentials(aws_env: None) -> None:
    provider = build_provider(consumer_settings(EMAIL_PROVIDER="ses"), {})
    assert provider.name == "ses"
