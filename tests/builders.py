"""Small builders for the tests: email requests, queue jobs and SQS events."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

# Personal data the tests plant and then look for everywhere it must not be.
GUEST_EMAIL = "ana.guest+pii@example.test"
GUEST_NAME = "Ana Pérez-Secretname"
PII = (GUEST_EMAIL, GUEST_NAME, "ana.guest", "Secretname")

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def email_request(**overrides: Any) -> dict[str, Any]:
    """A valid ``POST /v1/emails`` body; keyword arguments replace top-level fields."""
    body: dict[str, Any] = {
        "booking_id": "bk_123",
        "email_type": "booking_confirmed",
        "recipient": {"email": GUEST_EMAIL, "name": GUEST_NAME},
        "locale": "en",
        "time_zone": "Europe/Madrid",
        "data": {
            "restaurant_name": "Casa Lucio",
            "party_size": 4,
            "starts_at": "2026-12-24T20:30:00Z",
            "reference": "R-7F3K",
        },
    }
    body.update(overrides)
    return body


def job(*, deliver_at: datetime = T0, email: str = GUEST_EMAIL, **overrides: Any) -> dict[str, Any]:
    """A valid queue message body (CONTRACT §2) as a dict."""
    body = email_request(**overrides)
    body["recipient"] = {**body["recipient"], "email": email}
    body.update({"schema": "booking-email/v1", "job_id": str(uuid.uuid4()), "deliver_at": _iso(deliver_at)})
    return body


def sqs_record(
    body: dict[str, Any] | str,
    *,
    receive_count: int = 1,
    attributes: dict[str, str | int] | None = None,
    message_id: str | None = None,
) -> dict[str, Any]:
    """One record as the SQS event source mapping delivers it."""
    text = body if isinstance(body, str) else json.dumps(body)
    message_attributes = {
        name: {
            "stringValue": str(value),
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": "Number" if isinstance(value, int) else "String",
        }
        for name, value in (attributes or {}).items()
    }
    return {
        "messageId": message_id or str(uuid.uuid4()),
        "receiptHandle": "rh-" + uuid.uuid4().hex,
        "body": text,
        "attributes": {
            "ApproximateReceiveCount": str(receive_count),
            "SentTimestamp": "1764590400000",
            "SenderId": "AIDAEXAMPLE",
            "ApproximateFirstReceiveTimestamp": "1764590400000",
        },
        "messageAttributes": message_attributes,
        "md5OfBody": hashlib.md5(text.encode(), usedforsecurity=False).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:eu-west-1:123456789012:email",
        "awsRegion": "eu-west-1",
    }


def sqs_event(*records: dict[str, Any]) -> dict[str, Any]:
    return {"Records": list(records)}


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def later(moment: datetime, **delta: float) -> datetime:
    return moment + timedelta(**delta)
