"""The consumer's provider: built once, rebuilt on rotation, kept when the secret is out of reach."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import pytest

from booking_durability.emails import consumer
from booking_durability.settings import ConsumerSettings

SETTINGS = ConsumerSettings.model_validate(
    {
        "STAGE": "test",
        "DELIVERIES_TABLE": "t",
        "EMAIL_QUEUE_URL": "q",
        "EMAIL_DLQ_URL": "d",
        "EMAIL_PROVIDER": "resend",
        "PROVIDER_SECRET_ARN": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:provider",
    }
)


class Secret:
    """Stands in for the Powertools-cached secret: returns the current value, or fails."""

    def __init__(self) -> None:
        self.value: dict[str, str] = {"api_key": "re_one"}
        self.failing = False

    def __call__(self, _arn: str | None) -> Mapping[str, str]:
        if self.failing:
            raise ConnectionError("secrets manager unreachable")
        return dict(self.value)


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch) -> Secret:
    current = Secret()
    monkeypatch.setattr(consumer, "provider_credentials", current)
    return current


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> list[Mapping[str, str]]:
    seen: list[Mapping[str, str]] = []

    def build(_settings: Any, credentials: Mapping[str, str]) -> object:
        seen.append(credentials)
        return object()

    monkeypatch.setattr(consumer, "build_provider", build)
    return seen


def test_the_provider_is_built_once_while_credentials_stay_the_same(secret: Secret, built: list) -> None:
    cache = consumer.ProviderCache(SETTINGS)
    assert cache() is cache() is cache()
    assert built == [{"api_key": "re_one"}]


def test_a_rotated_key_yields_a_new_provider(secret: Secret, built: list) -> None:
    cache = consumer.ProviderCache(SETTINGS)
    first = cache()
    secret.value = {"api_key": "re_two"}
    assert cache() is not first
    assert built == [{"api_key": "re_one"}, {"api_key": "re_two"}]


def test_an_unreachable_secret_keeps_the_provider_already_built(secret: Secret, built: list) -> None:
    cache = consumer.ProviderCache(SETTINGS)
    first = cache()
    secret.failing = True
    assert cache() is first


def test_an_unreachable_secret_at_cold_start_fails_the_send(secret: Secret, built: list) -> None:
    secret.failing = True
    with pytest.raises(ConnectionError):
        consumer.ProviderCache(SETTINGS)()


def test_concurrent_sends_share_one_provider(secret: Secret, built: list) -> None:
    cache = consumer.ProviderCache(SETTINGS)
    barrier = threading.Barrier(8)
    providers: list[object] = []

    def send() -> None:
        barrier.wait()
        providers.append(cache())

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(p) for p in providers}) == 1
    assert len(built) == 1
