"""The bodies the booking app's webhook receives pass the committed schema
(``schemas/policy-drift-webhook-v1.json``, read by Ajv 2020 in strict mode as the app reads it):
for each way a drift flow ends, the flow runs against moto, its outbox item is published to the
notifications queue as the stream worker publishes it, and the real notifier handler posts it to a
receiver on loopback.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from booking_durability.adapters.reservations_table import ReservationsTable
from booking_durability.reservations.confirmation import ConfirmRequest, confirm_with_policy_retry
from booking_durability.reservations.refusals import PolicyChanged
from tests.ajv import ajv
from tests.builders import venue_config
from tests.integration.conftest import Api, Resources
from tests.integration.test_api_confirm import DriftingAgain, confirm, held
from tests.integration.test_interrupted_flows import store_of
from tests.integration.test_notifier import (
    Queues,
    Receiver,
    queues,
    receiver,
    verified,
    webhook_handler,
    webhook_secret_arn,
)

__all__ = ["held", "queues", "receiver", "webhook_handler", "webhook_secret_arn"]

SCHEMA = Path(__file__).resolve().parents[2] / "schemas" / "policy-drift-webhook-v1.json"


def outbox_bodies(resources: Resources) -> list[str]:
    """The outbox items' bodies, as stored: what the stream worker publishes."""
    items = resources.dynamodb.scan(TableName=resources.reservations_table)["Items"]
    return [item["body"]["S"] for item in items if item["pk"]["S"].startswith("OUTBOX#")]


def recovered(api: Api, resources: Resources, hold_id: str) -> None:
    api.call("PUT", "/v1/venues/casa", venue_config(buffer_minutes=30))
    assert confirm(api, hold_id).status == 200


def no_availability(api: Api, resources: Resources, hold_id: str) -> None:
    api.call("PUT", "/v1/venues/casa", venue_config(max_party_size=1))
    assert confirm(api, hold_id).status == 409


def drift_repeated(api: Api, resources: Resources, hold_id: str) -> None:
    api.call("PUT", "/v1/venues/casa", venue_config(buffer_minutes=30))
    with pytest.raises(PolicyChanged):
        confirm_with_policy_retry(
            store_of(resources, DriftingAgain), ConfirmRequest(hold_id, "bk_1"), lambda: datetime.now(UTC)
        )


def interrupted(api: Api, resources: Resources, hold_id: str) -> None:
    api.call("PUT", "/v1/venues/casa", venue_config(buffer_minutes=30))
    clock = {"now": datetime.now(UTC)}

    class SlowAfterReplacing(ReservationsTable):
        """The request stalls right after it replaced the hold, past the replacement's expiry."""

        def replace_hold(self, *args: Any, **kwargs: Any) -> None:
            super().replace_hold(*args, **kwargs)
            clock["now"] += timedelta(hours=1)

    with pytest.raises(PolicyChanged):
        confirm_with_policy_retry(
            store_of(resources, SlowAfterReplacing), ConfirmRequest(hold_id, "bk_1"), lambda: clock["now"]
        )


@pytest.mark.parametrize(
    ("end", "kind"),
    [
        (recovered, ("policy_drift.recovered", None)),
        (no_availability, ("policy_drift.unrecovered", "no_availability")),
        (drift_repeated, ("policy_drift.unrecovered", "drift_repeated")),
        (interrupted, ("policy_drift.unrecovered", "interrupted")),
    ],
    ids=["recovered", "no_availability", "drift_repeated", "interrupted"],
)
def test_the_body_the_webhook_receives_passes_the_committed_schema(
    api: Api,
    resources: Resources,
    held: dict[str, Any],
    queues: Queues,
    receiver: Receiver,
    webhook_handler: Any,
    end: Any,
    kind: tuple[str, str | None],
) -> None:
    # Given a drift flow that ended this way, and its event published from the outbox
    end(api, resources, held["hold_id"])
    [body] = outbox_bodies(resources)
    queues.publish(body)
    # When the notifier delivers it
    assert queues.deliver_batch(webhook_handler) == {"batchItemFailures": []}
    # Then the receiver got that body, signed, and the committed schema passes it
    [received] = receiver.received
    event = verified(received)
    assert (event["type"], event.get("reason")) == kind
    verdict = ajv().validate(SCHEMA, event)
    assert verdict.valid, verdict.errors
