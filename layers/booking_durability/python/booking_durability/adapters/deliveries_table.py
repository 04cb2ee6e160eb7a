"""The deliveries table: one item per dedupe key, the ledger that makes delivery exactly-once.

Item: ``booking_id`` (partition), ``email_key`` = ``{email_type}#{revision}`` (sort),
``dedupe_key``, ``email_type``, ``revision``, ``status``, ``attempts``, ``job_id``,
``lease_token``/``lease_until`` while a worker sends, ``failure_reason``, ``throttle_deferrals``
and ``not_before`` (a throttle's retry-after),
``updated_at``, ``sent_at`` and ``expires_at`` (TTL, epoch seconds). Never an address or a name.

Every state change is one conditional write; a refused condition returns the old item
(``ReturnValuesOnConditionCheckFailure``) so the caller learns why without a read.
DynamoDB deletes TTL-expired items lazily (and moto never does), so conditions treat an item
past ``expires_at`` as absent.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from booking_durability.adapters import aws
from booking_durability.emails.models import RETENTION, EmailStatus
from booking_durability.errors import DomainError


class LedgerUnavailable(DomainError):
    """DynamoDB failed for a reason other than a refused condition: retry the record later."""

    code = "LEDGER_UNAVAILABLE"


@dataclass(frozen=True)
class DeliveryRecord:
    """What the ledger says of an email someone else holds, finished, or asked us to hold off."""

    status: EmailStatus
    lease_until: float | None = None
    not_before: float | None = None


@dataclass(frozen=True)
class Claim:
    """The outcome of trying to take a dedupe key for sending.

    ``token`` is set when we hold the lease; otherwise ``current`` says who does or what
    became of the email.
    """

    token: str | None
    attempts: int = 0
    throttle_deferrals: int = 0
    current: DeliveryRecord | None = None


@dataclass(frozen=True)
class EmailRef:
    """What identifies one email in the ledger."""

    booking_id: str
    email_type: str
    revision: int

    @property
    def dedupe_key(self) -> str:
        return f"{self.booking_id}#{self.email_type}#{self.revision}"

    @property
    def key(self) -> dict[str, dict[str, str]]:
        return {
            "booking_id": {"S": self.booking_id},
            "email_key": {"S": f"{self.email_type}#{self.revision}"},
        }


# Who may take a key: nobody has it, its retention ran out, it waits (queued) and no throttle
# asked us to hold off until later, its last attempt failed (a redrive), or its sender's lease
# expired (the worker died between claim and send).
_TAKEABLE = (
    "attribute_not_exists(booking_id) OR expires_at < :now"
    " OR (#status = :queued AND (attribute_not_exists(not_before) OR not_before <= :now))"
    " OR #status = :failed OR (#status = :sending AND lease_until < :now)"
)
_HOLDS_LEASE = "lease_token = :token"
_LEASE = "lease_token, lease_until"


class DeliveryLedger(aws.AwsAdapter):
    service = "dynamodb"

    def __init__(self, table_name: str, client: Any | None = None) -> None:
        super().__init__(client)
        self.table_name = table_name

    # -- taking a key ------------------------------------------------------------------------

    def claim(
        self, ref: EmailRef, job_id: str, now: datetime, deliver_at: datetime, lease_seconds: int
    ) -> Claim:
        """Take the key for sending with a lease; one conditional write, no read."""
        token = uuid.uuid4().hex
        written = self._take(
            ref,
            now,
            deliver_at,
            EmailStatus.SENDING,
            set_more=[
                "lease_token = :token",
                "lease_until = :lease_until",
                "job_id = :job_id",
                "attempts = if_not_exists(attempts, :zero) + :one",
                "throttle_deferrals = if_not_exists(throttle_deferrals, :zero)",
            ],
            remove_more=[],
            values={
                ":token": {"S": token},
                ":lease_until": {"N": str(int(now.timestamp()) + lease_seconds)},
                ":job_id": {"S": job_id},
                ":zero": {"N": "0"},
                ":one": {"N": "1"},
            },
        )
        if isinstance(written, DeliveryRecord):
            return Claim(token=None, current=written)
        new = written["Attributes"]
        return Claim(
            token=token,
            attempts=int(new["attempts"]["N"]),
            throttle_deferrals=int(new["throttle_deferrals"]["N"]),
        )

    def settle(
        self, ref: EmailRef, status: EmailStatus, now: datetime, deliver_at: datetime
    ) -> DeliveryRecord | None:
        """Record a final state (``expired``) without sending; None when written, else the holder."""
        written = self._take(ref, now, deliver_at, status, set_more=[], remove_more=[_LEASE], values={})
        return written if isinstance(written, DeliveryRecord) else None

    # -- what became of a key we hold --------------------------------------------------------

    def mark_sent(self, ref: EmailRef, now: datetime) -> None:
        """The provider accepted the email. Unconditional: once sent, always sent."""
        self._write(
            ref,
            "SET #status = :status, sent_at = :now_iso, updated_at = :now_iso"
            f" REMOVE {_LEASE}, failure_reason, throttle_deferrals, not_before",
            {":status": {"S": EmailStatus.SENT}, ":now_iso": {"S": _iso(now)}},
        )

    def finish(
        self, ref: EmailRef, token: str, status: EmailStatus, now: datetime, reason: str | None = None
    ) -> None:
        """End our hold on the key: ``failed`` (with ``reason``), ``suppressed`` or ``expired``.

        A failed email may be redriven: it starts again with a fresh throttle budget.
        """
        values = {":status": {"S": status}, ":now_iso": {"S": _iso(now)}}
        sets = "SET #status = :status, updated_at = :now_iso"
        if reason is not None:
            sets += ", failure_reason = :reason"
            values[":reason"] = {"S": reason}
        self._write(
            ref,
            f"{sets} REMOVE {_LEASE}, throttle_deferrals, not_before",
            values,
            condition=_HOLDS_LEASE,
            condition_values={":token": {"S": token}},
        )

    def release(
        self, ref: EmailRef, token: str, now: datetime, *, throttled_until: datetime | None = None
    ) -> None:
        """Give the key back to ``queued`` after a retryable failure.

        After a throttle, ``throttled_until`` counts one more deferral and keeps the key from
        being claimed before then, whichever copy of the message comes first.
        """
        values = {":status": {"S": EmailStatus.QUEUED}, ":now_iso": {"S": _iso(now)}}
        update = f"SET #status = :status, updated_at = :now_iso REMOVE {_LEASE}"
        if throttled_until is not None:
            update = (
                "SET #status = :status, updated_at = :now_iso, not_before = :not_before"
                f" REMOVE {_LEASE} ADD throttle_deferrals :one"
            )
            values[":one"] = {"N": "1"}
            values[":not_before"] = {"N": str(math.ceil(throttled_until.timestamp()))}
        self._write(ref, update, values, condition=_HOLDS_LEASE, condition_values={":token": {"S": token}})

    # -- reads -------------------------------------------------------------------------------

    def sent_or_sending(
        self, booking_id: str, email_types: Iterable[str], now: datetime, exclude: str
    ) -> bool:
        """Whether any revision of these types went out, or is going out, for the booking."""
        types = sorted(set(email_types))
        if not types:
            return False
        values = {f":t{i}": {"S": t} for i, t in enumerate(types)}
        paginator = self.client.get_paginator("query")
        try:
            pages = paginator.paginate(
                TableName=self.table_name,
                KeyConditionExpression="booking_id = :b",
                FilterExpression=(
                    f"email_type IN ({', '.join(values)}) AND dedupe_key <> :self AND"
                    " (#status = :sent OR (#status = :sending AND lease_until >= :now))"
                    " AND (attribute_not_exists(expires_at) OR expires_at >= :now)"
                ),
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":b": {"S": booking_id},
                    ":self": {"S": exclude},
                    ":sent": {"S": EmailStatus.SENT},
                    ":sending": {"S": EmailStatus.SENDING},
                    ":now": {"N": str(int(now.timestamp()))},
                    **values,
                },
                ProjectionExpression="dedupe_key",
                ConsistentRead=True,
            )
            return any(page.get("Items") for page in pages)
        except (ClientError, BotoCoreError) as exc:
            raise LedgerUnavailable(f"query failed: {aws.error_code(exc)}") from None

    # -- plumbing ----------------------------------------------------------------------------

    def _take(
        self,
        ref: EmailRef,
        now: datetime,
        deliver_at: datetime,
        status: EmailStatus,
        *,
        set_more: list[str],
        remove_more: list[str],
        values: dict[str, Any],
    ) -> dict[str, Any] | DeliveryRecord:
        """Write ``status`` if the key is takeable; else return who holds it or what became of it."""
        expires_at = int(max(now, deliver_at).timestamp() + RETENTION.total_seconds())
        sets = [
            "#status = :status",
            "dedupe_key = :dedupe_key",
            "email_type = :email_type",
            "revision = :revision",
            "updated_at = :now_iso",
            "expires_at = :expires_at",
            *set_more,
        ]
        removes = ["failure_reason", "not_before", *remove_more]
        return self._write(
            ref,
            f"SET {', '.join(sets)} REMOVE {', '.join(removes)}",
            {
                ":status": {"S": status},
                ":dedupe_key": {"S": ref.dedupe_key},
                ":email_type": {"S": ref.email_type},
                ":revision": {"N": str(ref.revision)},
                ":now_iso": {"S": _iso(now)},
                ":expires_at": {"N": str(expires_at)},
                **values,
            },
            condition=_TAKEABLE,
            condition_values={
                ":now": {"N": str(int(now.timestamp()))},
                ":queued": {"S": EmailStatus.QUEUED},
                ":failed": {"S": EmailStatus.FAILED},
                ":sending": {"S": EmailStatus.SENDING},
            },
            # The whole item after the write (no read is consumed): the claim's counts come from it.
            return_values="ALL_NEW",
        )

    def _write(
        self,
        ref: EmailRef,
        update: str,
        values: dict[str, Any],
        *,
        condition: str | None = None,
        condition_values: dict[str, Any] | None = None,
        return_values: str = "NONE",
    ) -> dict[str, Any] | DeliveryRecord:
        """One UpdateItem. A refused condition returns the item as it was (who holds the key:
        for a lease-holder's write, the worker that took the expired lease over)."""
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "Key": ref.key,
            "UpdateExpression": update,
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": {**values, **(condition_values or {})},
            "ReturnValues": return_values,
        }
        if condition:
            request["ConditionExpression"] = condition
            request["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        try:
            return self.client.update_item(**request)  # type: ignore[no-any-return]
        except ClientError as exc:
            if aws.error_code(exc) == "ConditionalCheckFailedException":
                old: dict[str, Any] | None = exc.response.get("Item")  # type: ignore[assignment]
                if old is None:
                    # Without the old item we cannot tell who holds the key: try again later.
                    raise LedgerUnavailable("condition refused without the item") from None
                return _record(old)
            raise LedgerUnavailable(f"update_item failed: {aws.error_code(exc)}") from None
        except BotoCoreError as exc:
            raise LedgerUnavailable(f"update_item failed: {aws.error_code(exc)}") from None


def _record(item: dict[str, Any]) -> DeliveryRecord:
    return DeliveryRecord(
        status=EmailStatus(item.get("status", {}).get("S", EmailStatus.QUEUED)),
        lease_until=float(item["lease_until"]["N"]) if "lease_until" in item else None,
        not_before=float(item["not_before"]["N"]) if "not_before" in item else None,
    )


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
