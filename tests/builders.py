"""Small builders for the tests: email requests, queue jobs, SQS events and the contract's venue."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
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
    """A valid queue message body (docs/reference/queue-message.md#message-body) as a dict."""
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


@dataclass
class LambdaContext:
    """What Lambda hands a handler beside the event (Powertools' logger reads it)."""

    remaining_ms: int = 60_000
    function_name: str = "email-consumer"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:eu-west-1:123456789012:function:email-consumer"
    aws_request_id: str = "req-1"

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def sqs_event(*records: dict[str, Any]) -> dict[str, Any]:
    return {"Records": list(records)}


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def later(moment: datetime, **delta: float) -> datetime:
    return moment + timedelta(**delta)


def api_event(
    method: str,
    path: str,
    body: Any = None,
    *,
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    raw_body: str | None = None,
) -> dict[str, Any]:
    """An API Gateway REST proxy event (payload 1.0) as the API's functions receive it."""
    headers = (
        {"Content-Type": "application/json", **(headers or {})} if body is not None else dict(headers or {})
    )
    text = raw_body if raw_body is not None else (None if body is None else json.dumps(body))
    return {
        "resource": path,
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {name: [value] for name, value in headers.items()},
        "queryStringParameters": query,
        "multiValueQueryStringParameters": {k: [v] for k, v in query.items()} if query else None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": path,
            "httpMethod": method,
            "path": f"/v1{path}",
            "stage": "v1",
            "requestId": str(uuid.uuid4()),
            "identity": {"sourceIp": "127.0.0.1"},
        },
        "body": text,
        "isBase64Encoded": False,
    }


#: The test vector's hash, docs/reference/http-api.md#policy-hash.
CONTRACT_POLICY_HASH = "7b80010cc6e843103f7d54af0ad088b22cabf9552ab7c4eec84993a910e126e6"


def table(
    table_id: str,
    capacity: int = 2,
    *,
    min_party: int | None = None,
    zone: str = "main",
    combinable_with: list[str] | None = None,
) -> dict[str, Any]:
    """A table as ``PUT /v1/venues`` takes it; ``min_party`` and ``combinable_with`` left to defaults
    unless given."""
    body: dict[str, Any] = {"id": table_id, "capacity": capacity, "zone": zone}
    if min_party is not None:
        body["min_party"] = min_party
    if combinable_with is not None:
        body["combinable_with"] = combinable_with
    return body


def policy(**overrides: Any) -> dict[str, Any]:
    """The contract test vector's policy; keyword arguments replace fields."""
    body: dict[str, Any] = {
        "slot_minutes": 15,
        "default_duration_minutes": 90,
        "buffer_minutes": 10,
        "max_party_size": 10,
        "hold_ttl_seconds": 600,
        "allow_combinations": True,
        "bookable_zones": ["main", "terraza"],
    }
    body.update(overrides)
    return body


def vector_tables() -> list[dict[str, Any]]:
    """The contract test vector's tables: T1 (2, main), T2 (4, main), T3 (6, min 3, terraza)."""
    return [
        table("T1", 2, min_party=1, zone="main", combinable_with=["T2"]),
        table("T2", 4, min_party=1, zone="main", combinable_with=["T1"]),
        table("T3", 6, min_party=3, zone="terraza", combinable_with=[]),
    ]


def venue(tables: list[dict[str, Any]] | None = None, **policy_overrides: Any) -> dict[str, Any]:
    """A ``PUT /v1/venues/{venue_id}`` body: the vector's tables unless given, its policy overridden.
    Its policy hash, unchanged, is ``CONTRACT_POLICY_HASH``."""
    return {"tables": vector_tables() if tables is None else tables, "policy": policy(**policy_overrides)}


venue_config = venue  # the contract's test-vector venue, as the API tests call it
