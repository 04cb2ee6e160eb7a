"""The queue message keeps the API's input rules: a message the booking app publishes straight to
SQS with an instant out of range, a number written as a string, unprintable free text or an
address with a non-ASCII local part is dead-lettered at once as ``schema_invalid``, with nothing
of it in the attributes and nothing sent."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from booking_durability.emails.delivery import EmailOutcome, IncomingMessage
from booking_durability.observability import metrics
from tests.builders import GUEST_EMAIL, GUEST_NAME, job
from tests.integration.conftest import Clock, Resources, ScriptedProvider, attributes, make_delivery


def _message(body: dict[str, Any]) -> IncomingMessage:
    return IncomingMessage(
        message_id="m-1", receipt_handle="rh-1", body=json.dumps(body), receive_count=1, attempts=0
    )


@pytest.fixture(autouse=True)
def invocation_metrics() -> Iterator[None]:
    metrics.clear_metrics()
    yield
    metrics.clear_metrics()


def _data(**changes: Any) -> dict[str, Any]:
    return {**job()["data"], **changes}


BROKEN = {
    "deliver_at in year 1": {"deliver_at": "0001-01-01T00:00:00Z"},
    "deliver_at in 2100": {"deliver_at": "2100-01-01T00:00:00Z"},
    "not_after past +14:00": {"not_after": "2026-12-24T20:30:00+14:30"},
    "data.starts_at in year 1": {"data": _data(starts_at="0001-01-01T00:00:00+01:00")},
    "deliver_at as Unix seconds": {"deliver_at": 1796656327},
    "revision as a string": {"revision": "1"},
    "revision as a boolean": {"revision": True},
    "party_size as a boolean": {"data": _data(party_size=True)},
    "a name with a line break": {"recipient": {"email": GUEST_EMAIL, "name": GUEST_NAME + "\r\nBcc: x"}},
    "a restaurant with a tab": {"data": _data(restaurant_name="Casa\tLucio")},
    "a reference with a lone surrogate": {"data": _data(reference="R-\ud800")},
    "a local part that is not ASCII": {"recipient": {"email": "zoë.secretname@example.test"}},
    "a zone outside tzdata": {"time_zone": "Mars/Olympus_Mons"},
}


@pytest.mark.parametrize("broken", sorted(BROKEN))
def test_a_message_breaking_an_input_rule_is_dead_lettered_as_schema_invalid(
    resources: Resources, broken: str
) -> None:
    provider = ScriptedProvider()
    body = {**job(), **BROKEN[broken]}
    outcome = make_delivery(resources, provider, Clock()).deliver(_message(body))
    assert outcome is EmailOutcome.DEAD_LETTERED
    [dead] = resources.drain(resources.dlq_url)
    assert attributes(dead)["failure_reason"] == "schema_invalid"
    assert "dedupe_key" not in attributes(dead)
    for secret in (GUEST_EMAIL, GUEST_NAME, "zoë", "secretname"):
        assert secret not in json.dumps(attributes(dead), ensure_ascii=False)
    assert provider.calls == 0
