"""The Resend provider against the Resend-compatible double on loopback: what is delivered, and
what each fault and idempotency answer becomes for the consumer
(docs/reference/queue-message.md#failure-handling).
"""

from __future__ import annotations

import dataclasses
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from booking_durability.emails.providers.base import (
    AlreadyDelivered,
    PermanentProviderError,
    ProviderError,
    ProviderThrottled,
    TransientProviderError,
)
from booking_durability.emails.providers.resend import ResendProvider
from devstack.http_provider import HttpProviderDouble
from tests.integration.provider_fixtures import (
    GUEST_NAME,
    assert_reveals_nothing,
    guest_address,
    guest_email,
    running_http_double,
)

API_KEY = "re_local_key"


@pytest.fixture
def double() -> Iterator[HttpProviderDouble]:
    with running_http_double(api_key=API_KEY) as running:
        yield running


@pytest.fixture
def provider(double: HttpProviderDouble) -> Iterator[ResendProvider]:
    resend = ResendProvider(API_KEY, base_url=double.url, timeout_seconds=5)
    yield resend
    resend.client.close()


def test_email_is_delivered_once_with_our_headers(
    double: HttpProviderDouble, provider: ResendProvider
) -> None:
    # Given a confirmation for the guest
    outgoing = guest_email()

    # When it is sent
    provider_id = provider.send(outgoing)

    # Then the provider delivered it under the dedupe key, with the contract's headers
    (delivery,) = double.deliveries
    assert provider_id == delivery.id
    assert delivery.idempotency_key == outgoing.dedupe_key
    assert delivery.to == [f"{GUEST_NAME} <{guest_address()}>"]
    assert delivery.subject == outgoing.subject
    assert (delivery.text, delivery.html) == (outgoing.text, outgoing.html)
    assert delivery.headers == {
        "Message-ID": outgoing.message_id,
        "X-Dedupe-Key": outgoing.dedupe_key,
        "X-Job-Id": outgoing.job_id,
    }


def test_a_retry_of_the_same_email_returns_the_same_id_and_delivers_nothing_new(
    double: HttpProviderDouble, provider: ResendProvider
) -> None:
    # Given an email already sent
    first = provider.send(guest_email())

    # When the consumer sends it again (say, after losing the answer)
    second = provider.send(guest_email())

    # Then the provider recognises it: same id, one delivery
    assert second == first
    assert len(double.deliveries) == 1


def test_another_job_for_a_delivered_key_is_already_delivered(
    double: HttpProviderDouble, provider: ResendProvider
) -> None:
    # Given an email delivered by one job
    provider.send(guest_email())

    # When another job (another X-Job-Id, so another payload) sends the same dedupe key
    outgoing = guest_email(job_id="7d1c2b3a-0000-4000-8000-000000000002")
    with pytest.raises(AlreadyDelivered) as raised:
        provider.send(outgoing)

    # Then the consumer learns the first send went out, and the guest still has one email
    assert raised.value.status == 409
    assert_reveals_nothing(raised.value, outgoing)
    assert len(double.deliveries) == 1


def test_two_sends_of_one_key_at_once_deliver_once_and_the_loser_retries() -> None:
    # Given a slow provider and two workers holding the same email (a lease takeover)
    with running_http_double(latency_seconds=1.0, api_key=API_KEY) as double:
        provider = ResendProvider(API_KEY, base_url=double.url, timeout_seconds=5)
        outgoing = guest_email()
        outcomes: list[str | ProviderError] = []
        lock = threading.Lock()

        def send() -> None:
            try:
                result: str | ProviderError = provider.send(outgoing)
            except ProviderError as error:
                result = error
            with lock:
                outcomes.append(result)

        # When both send at the same time
        workers = [threading.Thread(target=send) for _ in range(2)]
        workers[0].start()
        time.sleep(0.15)
        workers[1].start()
        for worker in workers:
            worker.join(timeout=10)
        provider.client.close()
        deliveries = double.deliveries

    # Then one delivered, and the other got a transient 409 to retry later
    errors = [outcome for outcome in outcomes if isinstance(outcome, ProviderError)]
    assert len(outcomes) == 2
    assert len(errors) == 1
    assert isinstance(errors[0], TransientProviderError)
    assert errors[0].status == 409
    assert_reveals_nothing(errors[0], outgoing)
    assert len(deliveries) == 1


def test_transient_tag_is_retried_until_delivered(
    double: HttpProviderDouble, provider: ResendProvider
) -> None:
    # Given a recipient tagged to get 503 twice
    outgoing = guest_email("transient2")

    # When the consumer keeps retrying
    failures = []
    for _ in range(2):
        with pytest.raises(TransientProviderError) as raised:
            provider.send(outgoing)
        failures.append(raised.value)
    provider.send(outgoing)

    # Then two transient 503s, then exactly one delivery
    assert [failure.status for failure in failures] == [503, 503]
    for failure in failures:
        assert_reveals_nothing(failure, outgoing)
    assert len(double.deliveries) == 1
    assert double.attempts(outgoing.dedupe_key) == 3


def test_throttle_tag_is_throttled_for_the_retry_after_the_provider_gave(
    double: HttpProviderDouble, provider: ResendProvider
) -> None:
    outgoing = guest_email("throttle1")
    with pytest.raises(ProviderThrottled) as raised:
        provider.send(outgoing)
    assert raised.value.status == 429
    assert raised.value.retry_after == 1.0
    assert_reveals_nothing(raised.value, outgoing)
    provider.send(outgoing)
    assert len(double.deliveries) == 1


def test_permanent_tag_is_refused_for_good(double: HttpProviderDouble, provider: ResendProvider) -> None:
    outgoing = guest_email("permanent")
    with pytest.raises(PermanentProviderError) as raised:
        provider.send(outgoing)
    assert raised.value.status == 422
    assert_reveals_nothing(raised.value, outgoing)
    assert double.deliveries == []


def test_a_wrong_api_key_is_transient_so_it_alarms_instead_of_dead_lettering(
    double: HttpProviderDouble,
) -> None:
    # Given a provider configured with a revoked key
    provider = ResendProvider("re_revoked", base_url=double.url, timeout_seconds=5)
    outgoing = guest_email()

    # When it sends, then the failure is transient (it would hit every email alike)
    with pytest.raises(TransientProviderError) as raised:
        provider.send(outgoing)
    provider.client.close()
    assert raised.value.status == 403
    assert_reveals_nothing(raised.value, outgoing)


def test_an_unreachable_provider_is_transient() -> None:
    # Given nothing listens where the provider points
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    provider = ResendProvider(API_KEY, base_url=url, timeout_seconds=2)
    outgoing = guest_email()

    # When it sends, then the consumer retries later
    with pytest.raises(TransientProviderError) as raised:
        provider.send(outgoing)
    assert raised.value.status is None
    assert_reveals_nothing(raised.value, outgoing)


def test_a_slow_provider_times_out_as_transient() -> None:
    # Given a provider slower than our timeout
    with running_http_double(latency_seconds=1.0, api_key=API_KEY) as double:
        provider = ResendProvider(API_KEY, base_url=double.url, timeout_seconds=0.2)
        outgoing = dataclasses.replace(guest_email(), dedupe_key="bk-slow#booking_confirmed#0")

        # When it sends, then the timeout is transient
        with pytest.raises(TransientProviderError) as raised:
            provider.send(outgoing)
        provider.client.close()
    assert_reveals_nothing(raised.value, outgoing)
