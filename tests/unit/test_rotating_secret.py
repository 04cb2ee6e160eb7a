"""What is built from a secret (the consumer's provider, the notifier's signing key): built once,
rebuilt on rotation, kept when the secret is out of reach."""

from __future__ import annotations

import threading
from collections.abc import Mapping

import pytest

from booking_durability.adapters.secrets import Rotating


class Secret:
    """Stands in for the Powertools-cached secret: returns the current value, or fails."""

    def __init__(self) -> None:
        self.value: dict[str, str] = {"api_key": "re_one"}
        self.failing = False

    def __call__(self) -> Mapping[str, str]:
        if self.failing:
            raise ConnectionError("secrets manager unreachable")
        return dict(self.value)


class Built:
    """Records every secret something was built from."""

    def __init__(self) -> None:
        self.seen: list[Mapping[str, str]] = []

    def __call__(self, secret: Mapping[str, str]) -> object:
        self.seen.append(secret)
        return object()


@pytest.fixture
def secret() -> Secret:
    return Secret()


@pytest.fixture
def built() -> Built:
    return Built()


def test_it_is_built_once_while_the_secret_stays_the_same(secret: Secret, built: Built) -> None:
    rotating = Rotating(secret, built)
    assert rotating() is rotating() is rotating()
    assert built.seen == [{"api_key": "re_one"}]


def test_a_rotated_secret_yields_a_new_one(secret: Secret, built: Built) -> None:
    rotating = Rotating(secret, built)
    first = rotating()
    secret.value = {"api_key": "re_two"}
    assert rotating() is not first
    assert built.seen == [{"api_key": "re_one"}, {"api_key": "re_two"}]


def test_an_unreachable_secret_keeps_what_was_already_built(secret: Secret, built: Built) -> None:
    rotating = Rotating(secret, built)
    first = rotating()
    secret.failing = True
    assert rotating() is first


def test_an_unreachable_secret_at_cold_start_fails_the_use(secret: Secret, built: Built) -> None:
    secret.failing = True
    with pytest.raises(ConnectionError):
        Rotating(secret, built)()


def test_concurrent_users_share_one(secret: Secret, built: Built) -> None:
    rotating = Rotating(secret, built)
    barrier = threading.Barrier(8)
    seen: list[object] = []

    def use() -> None:
        barrier.wait()
        seen.append(rotating())

    threads = [threading.Thread(target=use) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(p) for p in seen}) == 1
    assert len(built.seen) == 1
