"""Drift events, secrets and fakes for the notifier's tests (docs/reference/notifications.md#event-body)."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from booking_durability.emails.ports import OutgoingMessage
from booking_durability.errors import QueueSendFailed

# A Standard Webhooks secret as a receiver would generate it: whsec_ + base64 of random bytes.
SECRET_BYTES = b"drift-notifier-test-key-32-bytes"
SECRET = "whsec_" + base64.b64encode(SECRET_BYTES).decode()
OTHER_SECRET_BYTES = b"another-receiver-key-of-32-bytes"
OTHER_SECRET = "whsec_" + base64.b64encode(OTHER_SECRET_BYTES).decode()
ADMIN_EMAIL = "ops-admin@example.test"
HASH_A = "a" * 64
HASH_B = "b" * 64


def drift_event(**overrides: Any) -> dict[str, Any]:
    """A valid recovered-drift body; keyword arguments replace fields (None removes one)."""
    body: dict[str, Any] = {
        "type": "policy_drift.recovered",
        "event_id": str(uuid.uuid4()),
        "occurred_at": "2026-12-01T12:00:00Z",
        "venue_id": "casa",
        "original_hold_id": "hold_original",
        "hold_id": "hold_replacement",
        "original_policy_hash": HASH_A,
        "policy_hash": HASH_B,
        "policy_version": 3,
        "attempts": 2,
    }
    body.update(overrides)
    return {name: value for name, value in body.items() if value is not None}


def unrecovered_event(**overrides: Any) -> dict[str, Any]:
    return drift_event(type="policy_drift.unrecovered", hold_id=None, reason="no_availability", **overrides)


def as_body(event: Mapping[str, Any]) -> str:
    """The body as the outbox stores it: compact JSON in its own key order."""
    return json.dumps(event, separators=(",", ":"))


@dataclass
class FakeQueue:
    """An SQS queue in memory; ``failing`` makes every send fail as SQS refusing would."""

    sent: list[OutgoingMessage] = field(default_factory=list)
    failing: bool = False

    def send(self, message: OutgoingMessage) -> str:
        if self.failing:
            raise QueueSendFailed("send_message failed: ServiceUnavailable")
        self.sent.append(message)
        return f"m-{len(self.sent)}"

    def change_visibility(self, receipt_handle: str, seconds: int) -> None:
        raise AssertionError("the notifier never changes visibility")


@dataclass(frozen=True)
class Posted:
    url: str
    body: bytes
    headers: dict[str, str]


@dataclass
class FakeTransport:
    """A webhook receiver in memory: answers each POST from a script of statuses or failures."""

    script: list[int | BaseException] = field(default_factory=list)
    posted: list[Posted] = field(default_factory=list)

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        self.posted.append(Posted(url, body, dict(headers)))
        answer = self.script.pop(0) if self.script else 200
        if isinstance(answer, BaseException):
            raise answer
        return answer


@dataclass
class Clock:
    now: datetime = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now
