"""Signing and sending a drift event to the admin's webhook (docs/reference/notifications.md#signing):
Standard Webhooks headers any receiver library verifies, the same id on every retry, a fresh
signature each send, two signatures while the secret is rotated, and the receiver's answer
classified as delivered, retry or refused."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from standardwebhooks import Webhook

from booking_durability.adapters.secrets import Rotating
from booking_durability.emails.models import PolicyDriftData
from booking_durability.notifications.webhook import (
    HttpxTransport,
    InvalidWebhookSecret,
    WebhookChannel,
    WebhookRejected,
    WebhookSigner,
    WebhookTarget,
    WebhookUnreachable,
    target_from_secret,
)
from tests.unit.notifications.builders import (
    OTHER_SECRET,
    OTHER_SECRET_BYTES,
    SECRET,
    SECRET_BYTES,
    Clock,
    FakeTransport,
    as_body,
    drift_event,
)

URL = "https://hooks.example.test/drift/tok_path_secret"


def channel(
    transport: FakeTransport, clock: Clock, secret: str = SECRET, previous: str | None = None
) -> WebhookChannel:
    target = WebhookTarget(url=URL, signer=WebhookSigner(secret, previous))
    return WebhookChannel(target=lambda: target, transport=transport, clock=clock)


def send(web: WebhookChannel, body: str) -> None:
    web.deliver(PolicyDriftData.model_validate_json(body), body)


def verify_now(secret: str, body: bytes, headers: dict[str, str]) -> object:
    return Webhook(secret).verify(body, headers)


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime.now(UTC).replace(microsecond=0))


def test_the_body_goes_out_unchanged_signed_so_a_standard_webhooks_receiver_verifies_it(
    clock: Clock,
) -> None:
    # Given an event body in its own key order and spacing, which re-serializing would change
    event = drift_event()
    body = json.dumps(dict(reversed(event.items())), indent=1)
    transport = FakeTransport()
    # When it is delivered
    send(channel(transport, clock), body)
    # Then the exact bytes are POSTed as JSON to the URL, and the receiver's library accepts them
    [posted] = transport.posted
    assert posted.url == URL
    assert posted.body == body.encode()
    assert posted.headers["content-type"] == "application/json"
    assert verify_now(SECRET, posted.body, posted.headers) == event


def test_the_headers_are_the_event_id_the_send_time_and_a_v1_hmac_of_id_time_and_body(
    clock: Clock,
) -> None:
    body = as_body(drift_event())
    event_id = PolicyDriftData.model_validate_json(body).event_id
    transport = FakeTransport()
    send(channel(transport, clock), body)
    headers = transport.posted[0].headers
    assert headers["webhook-id"] == f"msg_{event_id}"
    assert headers["webhook-timestamp"] == str(int(clock.now.timestamp()))
    # Computed here from the contract's words, not by the library under test
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.{body}".encode()
    expected = base64.b64encode(hmac.new(SECRET_BYTES, signed, hashlib.sha256).digest()).decode()
    assert headers["webhook-signature"] == f"v1,{expected}"


def test_a_retry_keeps_the_id_and_is_signed_afresh_at_its_own_send_time(clock: Clock) -> None:
    # Given a first send the receiver could not take
    body = as_body(drift_event())
    transport = FakeTransport(script=[503, 200])
    web = channel(transport, clock)
    with pytest.raises(WebhookUnreachable):
        send(web, body)
    # When it is sent again a minute later
    clock.now += timedelta(minutes=1)
    send(web, body)
    # Then both carry the same id, each its own timestamp and a signature valid for it
    first, second = (posted.headers for posted in transport.posted)
    assert first["webhook-id"] == second["webhook-id"]
    assert int(second["webhook-timestamp"]) - int(first["webhook-timestamp"]) == 60
    assert first["webhook-signature"] != second["webhook-signature"]
    verify_now(SECRET, transport.posted[1].body, second)


def test_a_signature_made_for_another_secret_does_not_verify(clock: Clock) -> None:
    transport = FakeTransport()
    send(channel(transport, clock, secret=OTHER_SECRET), as_body(drift_event()))
    with pytest.raises(Exception, match="No matching signature"):
        verify_now(SECRET, transport.posted[0].body, transport.posted[0].headers)


def test_while_the_secret_is_rotated_a_body_signed_with_both_keys_verifies_under_either(
    clock: Clock,
) -> None:
    # Given a secret being rotated: the new key, and the previous one still valid
    transport = FakeTransport()
    # When an event is delivered
    send(channel(transport, clock, secret=OTHER_SECRET, previous=SECRET), as_body(drift_event()))
    # Then a receiver that still has the old key and one that already has the new key both accept it
    [posted] = transport.posted
    assert verify_now(SECRET, posted.body, posted.headers) == verify_now(
        OTHER_SECRET, posted.body, posted.headers
    )
    # And the header is two space-separated v1 signatures, the new key's first (computed here)
    signed = f"{posted.headers['webhook-id']}.{posted.headers['webhook-timestamp']}.".encode() + posted.body
    new, old = (
        base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
        for key in (OTHER_SECRET_BYTES, SECRET_BYTES)
    )
    assert posted.headers["webhook-signature"] == f"v1,{new} v1,{old}"
    # And a third key verifies neither
    with pytest.raises(Exception, match="No matching signature"):
        verify_now(
            "whsec_" + base64.b64encode(b"a-third-key-nobody-was-given-yet").decode(),
            posted.body,
            posted.headers,
        )


def test_a_rotation_from_start_to_end_never_leaves_a_receiver_without_a_signature_it_accepts(
    clock: Clock,
) -> None:
    # Given the target built from the secret as Secrets Manager gives it
    current = {"url": URL, "secret": SECRET}
    transport = FakeTransport()
    web = WebhookChannel(
        target=Rotating(lambda: current, target_from_secret), transport=transport, clock=clock
    )
    send(web, as_body(drift_event()))
    # When the operator puts the new key, keeping the old one as previous, and 24 h later drops it
    current = {"url": URL, "secret": OTHER_SECRET, "previous": SECRET}
    send(web, as_body(drift_event()))
    current = {"url": URL, "secret": OTHER_SECRET}
    send(web, as_body(drift_event()))
    before, during, after = transport.posted
    # Then the receiver, switching keys at any point during the overlap, accepts every request
    verify_now(SECRET, before.body, before.headers)
    verify_now(SECRET, during.body, during.headers)
    verify_now(OTHER_SECRET, during.body, during.headers)
    verify_now(OTHER_SECRET, after.body, after.headers)
    with pytest.raises(Exception, match="No matching signature"):
        verify_now(SECRET, after.body, after.headers)


def test_a_url_changed_in_the_secret_is_where_the_next_event_goes(clock: Clock) -> None:
    current = {"url": URL, "secret": SECRET}
    transport = FakeTransport()
    web = WebhookChannel(
        target=Rotating(lambda: current, target_from_secret), transport=transport, clock=clock
    )
    send(web, as_body(drift_event()))
    current = {"url": "https://hooks.example.test/moved", "secret": SECRET}
    send(web, as_body(drift_event()))
    assert [posted.url for posted in transport.posted] == [URL, "https://hooks.example.test/moved"]


@pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
def test_any_2xx_is_delivered(status: int, clock: Clock) -> None:
    send(channel(FakeTransport(script=[status]), clock), as_body(drift_event()))


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_busy_or_failing_receivers_are_retried(status: int, clock: Clock) -> None:
    with pytest.raises(WebhookUnreachable) as raised:
        send(channel(FakeTransport(script=[status]), clock), as_body(drift_event()))
    assert raised.value.status == status


@pytest.mark.parametrize("status", [301, 302, 400, 401, 403, 404, 410, 413, 422])
def test_any_other_answer_is_a_refusal(status: int, clock: Clock) -> None:
    with pytest.raises(WebhookRejected) as raised:
        send(channel(FakeTransport(script=[status]), clock), as_body(drift_event()))
    assert raised.value.status == status


@pytest.mark.parametrize(
    "secret",
    [
        "c2VjcmV0LWJ5dGVz",  # no prefix
        "whsec_",  # nothing after it
        "whsec_not base64!!",
        "whsk_c2VjcmV0LWJ5dGVz",
    ],
)
def test_a_malformed_secret_is_refused_without_quoting_it(secret: str) -> None:
    with pytest.raises(InvalidWebhookSecret) as raised:
        WebhookSigner(secret)
    assert str(raised.value) == "the webhook secret must be whsec_ followed by base64"


def test_an_unpadded_secret_is_accepted_as_receivers_generate_them(clock: Clock) -> None:
    unpadded = SECRET.rstrip("=")
    transport = FakeTransport()
    send(channel(transport, clock, secret=unpadded), as_body(drift_event()))
    verify_now(SECRET, transport.posted[0].body, transport.posted[0].headers)


@pytest.mark.parametrize(
    ("secret", "complaint"),
    [
        ({"secret": SECRET}, '{"url": "https://...", "secret": "whsec_..."}'),
        ({"url": URL}, '{"url": "https://...", "secret": "whsec_..."}'),
        ({"url": URL, "api_key": SECRET}, '{"url": "https://...", "secret": "whsec_..."}'),
        ({"url": "http://hooks.example.test/tok_path_secret", "secret": SECRET}, "must be https"),
        ({"url": "ftp://hooks.example.test/tok_path_secret", "secret": SECRET}, "must be https"),
        ({"url": "https:///tok_path_secret", "secret": SECRET}, "must be https"),
        ({"url": "https://hooks.example.test/tok_path secret", "secret": SECRET}, "must be https"),
        ({"url": URL, "secret": SECRET, "previous": "tok_path_secret"}, "previous key must be whsec_"),
    ],
)
def test_a_malformed_webhook_secret_is_refused_naming_the_field_not_its_value(
    secret: dict[str, str], complaint: str
) -> None:
    with pytest.raises(InvalidWebhookSecret) as raised:
        target_from_secret(secret)
    assert complaint in str(raised.value)
    assert "tok_path_secret" not in str(raised.value)
    assert SECRET not in str(raised.value)


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8025/hooks", "http://localhost/hooks", "http://[::1]:8025/"]
)
def test_plain_http_is_accepted_only_to_the_machine_itself(url: str) -> None:
    assert target_from_secret({"url": url, "secret": SECRET}).url == url


def test_an_empty_previous_key_is_no_previous_key(clock: Clock) -> None:
    target = target_from_secret({"url": URL, "secret": SECRET, "previous": ""})
    transport = FakeTransport()
    WebhookChannel(target=lambda: target, transport=transport, clock=clock).deliver(
        PolicyDriftData.model_validate_json(as_body(drift_event())), as_body(drift_event())
    )
    assert transport.posted[0].headers["webhook-signature"].count("v1,") == 1


def test_neither_signer_nor_channel_shows_the_secret_or_the_url(clock: Clock) -> None:
    web = channel(FakeTransport(), clock, secret=OTHER_SECRET, previous=SECRET)
    shown = repr(web) + repr(web.target()) + repr(web.target().signer) + repr(HttpxTransport(5))
    for secret in (SECRET, OTHER_SECRET):
        assert secret not in shown
        assert secret[len("whsec_") :] not in shown
    assert "tok_path_secret" not in shown


def transport_answering(handler: httpx.MockTransport) -> HttpxTransport:
    return HttpxTransport(5, transport=handler)


def test_the_http_transport_returns_the_status_without_reading_the_body() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(202, content=b"accepted")

    status = transport_answering(httpx.MockTransport(answer)).post(
        URL, b'{"a":1}', {"content-type": "application/json", "webhook-id": "msg_1"}
    )
    assert status == 202
    assert seen[0].content == b'{"a":1}'
    assert seen[0].headers["webhook-id"] == "msg_1"


@pytest.mark.parametrize(
    "error", [httpx.ConnectTimeout("t"), httpx.ReadTimeout("t"), httpx.ConnectError("refused")]
)
def test_timeouts_and_connection_errors_are_unreachable_and_quote_nothing(error: Exception) -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise error

    with pytest.raises(WebhookUnreachable) as raised:
        transport_answering(httpx.MockTransport(fail)).post(URL, b"{}", {})
    assert raised.value.status is None
    assert raised.value.__cause__ is None
    assert raised.value.__context__ is None
    assert "tok_path_secret" not in str(raised.value)


def test_the_http_transport_posts_without_an_httpx_client_which_tracing_would_record(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given httpx.Client replaced, as X-Ray's patching replaces it with one recording every URL
    class Recorded(httpx.Client):
        def __init__(self, *args: object, **kwargs: object) -> None:
            raise AssertionError("the webhook URL went through an httpx.Client")

    monkeypatch.setattr(httpx, "Client", Recorded)
    # When a webhook is posted, then it is sent all the same, through the transport alone
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    assert HttpxTransport(5, transport=httpx.MockTransport(answer)).post(URL, b"{}", {}) == 204
    assert str(seen[0].url) == URL
    assert seen[0].extensions["timeout"] == httpx.Timeout(5).as_dict()
