"""The deliveries table: one item per dedupe key, the ledger that makes delivery exactly-once.

Item: ``booking_id`` (partition), ``email_key`` = ``{email_type}#{revision}`` (sort),
``dedupe_key``, ``email_type``, ``revision``, ``status``, ``attempts``, ``job_id``,
``lease_token``/``lease_until`` while a worker sends, ``failure_reason``, ``throttle_deferrals``,
``updated_at``, ``sent_at`` and ``expires_at`` (TTL, epoch seconds). Never an address or a name.

Every state change is one conditional write; a refused condition returns the old item
(``ReturnValuesOnConditionCheckFailure``) so the caller learns why without a read.
DynamoDB deletes TTL-expired items lazily (and moto never does), so conditions treat an item
past ``expires_at`` as absent.
"""

from __future__ import annotations

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
    dedupe_key: str
    status: EmailStatus
    attempts: int
    updated_at: str
    lease_until: float | None = None
    failure_reason: str | None = None
    throttle_deferrals: int = 0

    def lease_live(self, now: datetime) -> bool:
        return self.status is EmailStatus.SENDING and (self.lease_until or 0) >= now.timestamp()


@dataclass(frozen=True)
class Claim:
    """The outcome of trying to take a dedupe key for sending.

    ``token`` is set when we hold the lease; otherwise ``current`` says who does or what
    became of the email.
    """

    token: str | None
    attempts: int = 0
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


# Who may take a key: nobody has it, its retention ran out, it waits (queued), its last attempt
# failed (a redrive), or its sender's lease expired (the worker died between claim and send).
_TAKEABLE = (
    "attribute_not_exists(booking_id) OR expires_at < :now OR #status IN (:queued, :failed)"
    " OR (#status = :sending AND lease_until < :now)"
)


class DeliveryLedger(aws.AwsAdapter):
    service = "dynamodb"

    def __init__(self, table_name: str, client: Any | None = None) -> None:
        super().__init__(client)
        self.table_name = table_name

    # -- transitions -------------------------------------------------------------------------

    def claim(
        self, ref: EmailRef, job_id: str, now: datetime, deliver_at: datetime, lease_seconds: int
    ) -> Claim:
        """Take the key for sending with a lease; one conditional write, no read."""
        token = uuid.uuid4().hex
        response = self._take(
            ref,
            now,
            deliver_at,
            status=EmailStatus.SENDING,
            extra_set="lease_token = :token, lease_until = :lease_until, job_id = :job_id,"
            " attempts = if_not_exists(attempts, :zero) + :one",
            extra_values={
                ":token": {"S": token},
                ":lease_until": {"N": str(int(now.timestamp()) + lease_seconds)},
                ":job_id": {"S": job_id},
                ":zero": {"N": "0"},
                ":one": {"N": "1"},
            },
            return_values="UPDATED_NEW",
        )
        if isinstance(response, DeliveryRecord):
            return Claim(token=None, current=response)
        return Claim(token=token, attempts=int(response["Attributes"]["attempts"]["N"]))

    def settle(
        self, ref: EmailRef, status: EmailStatus, now: datetime, deliver_at: datetime
    ) -> DeliveryRecord | None:
        """Record a final state (``expired``) without sending; None when written, else the holder."""
        response = self._take(ref, now, deliver_at, status=status, return_values="NONE")
        return response if isinstance(response, DeliveryRecord) else None

    def mark_sent(self, ref: EmailRef, now: datetime) -> None:
        """The provider accepted the email. Unconditional: once sent, always sent."""
        self._update(
            ref,
            "SET #status = :sent, sent_at = :now_iso, updated_at = :now_iso"
            " REMOVE lease_token, lease_until, failure_reason",
            {":sent": {"S": EmailStatus.SENT}, ":now_iso": {"S": _iso(now)}},
        )

    def mark_failed(self, ref: EmailRef, token: str, reason: str, now: datetime) -> None:
        """The email will not go out unless redriven (``failed`` can be claimed again)."""
        self._update(
            ref,
            "SET #status = :failed, failure_reason = :reason, updated_at = :now_iso"
            " REMOVE lease_token, lease_until",
            {":failed": {"S": EmailStatus.FAILED}, ":reason": {"S": reason}, ":now_iso": {"S": _iso(now)}},
            condition="lease_token = :token",
            condition_values={":token": {"S": token}},
        )

    def mark_suppressed(self, ref: EmailRef, token: str, now: datetime) -> None:
        self._update(
            ref,
            "SET #status = :suppressed, updated_at = :now_iso REMOVE lease_token, lease_until",
            {":suppressed": {"S": EmailStatus.SUPPRESSED}, ":now_iso": {"S": _iso(now)}},
            condition="lease_token = :token",
            condition_values={":token": {"S": token}},
        )

    def release(self, ref: EmailRef, token: str, now: datetime, *, throttled: bool = False) -> int:
        """Give the key back to ``queued`` after a retryable failure.

        Returns how many times the email has now been deferred for throttling (the consumer
        caps that); counting it here costs nothing, the release is written anyway.
        """
        add = " ADD throttle_deferrals :one" if throttled else ""
        response = self._update(
            ref,
            "SET #status = :queued, updated_at = :now_iso REMOVE lease_token, lease_until" + add,
            {
                ":queued": {"S": EmailStatus.QUEUED},
                ":now_iso": {"S": _iso(now)},
                **({":one": {"N": "1"}} if throttled else {}),
            },
            condition="lease_token = :token",
            condition_values={":token": {"S": token}},
            return_values="UPDATED_NEW" if throttled else "NONE",
        )
        if not throttled or response is None:
            return 0
        return int(response.get("Attributes", {}).get("throttle_deferrals", {}).get("N", "0"))

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
        *,
        status: EmailStatus,
        extra_set: str = "",
        extra_values: dict[str, Any] | None = None,
        return_values: str,
    ) -> Any:
        expires_at = int(max(now, deliver_at).timestamp() + RETENTION.total_seconds())
        update = (
            "SET #status = :status, dedupe_key = :dedupe_key, email_type = :email_type,"
            " revision = :revision, updated_at = :now_iso, expires_at = :expires_at"
            " REMOVE failure_reason"
        )
        if extra_set:
            update = update.replace(" REMOVE", f", {extra_set} REMOVE")
        values = {
            ":status": {"S": status},
            ":dedupe_key": {"S": ref.dedupe_key},
            ":email_type": {"S": ref.email_type},
            ":revision": {"N": str(ref.revision)},
            ":now_iso": {"S": _iso(now)},
            ":expires_at": {"N": str(expires_at)},
            ":now": {"N": str(int(now.timestamp()))},
            ":queued": {"S": EmailStatus.QUEUED},
            ":failed": {"S": EmailStatus.FAILED},
            ":sending": {"S": EmailStatus.SENDING},
            **(extra_values or {}),
        }
        try:
            return self.client.update_item(
                TableName=self.table_name,
                Key=ref.key,
                UpdateExpression=update,
                ConditionExpression=_TAKEABLE,
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues=values,
                ReturnValues=return_values,
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if aws.error_code(exc) == "ConditionalCheckFailedException":
                item: dict[str, Any] = exc.response.get("Item") or {}  # type: ignore[assignment]
                return _record(item, ref)
            raise LedgerUnavailable(f"update_item failed: {aws.error_code(exc)}") from None
        except BotoCoreError as exc:
            raise LedgerUnavailable(f"update_item failed: {aws.error_code(exc)}") from None

    def _update(
        self,
        ref: EmailRef,
        update: str,
        values: dict[str, Any],
        *,
        condition: str | None = None,
        condition_values: dict[str, Any] | None = None,
        return_values: str = "NONE",
    ) -> dict[str, Any] | None:
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "Key": ref.key,
            "UpdateExpression": update,
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": {**values, **(condition_values or {})},
            "ReturnValues": return_values,
        }
        if condition:
            kwargs["ConditionExpression"] = condition
        try:
            return self.client.update_item(**kwargs)  # type: ignore[no-any-return]
        except ClientError as exc:
            if aws.error_code(exc) == "ConditionalCheckFailedException":
                # Our lease was taken over: the new holder owns the record's state now.
                return None
            raise LedgerUnavailable(f"update_item failed: {aws.error_code(exc)}") from None
        except BotoCoreError as exc:
            raise LedgerUnavailable(f"update_item failed: {aws.error_code(exc)}") from None


def _record(item: dict[str, Any], ref: EmailRef) -> DeliveryRecord:
    def number(name: str) -> float | None:
        return float(item[name]["N"]) if name in item else None

    return DeliveryRecord(
        dedupe_key=ref.dedupe_key,
        status=EmailStatus(item.get("status", {}).get("S", EmailStatus.QUEUED)),
        attempts=int(number("attempts") or 0),
        updated_at=item.get("updated_at", {}).get("S", ""),
        lease_until=number("lease_until"),
        failure_reason=item.get("failure_reason", {}).get("S"),
        throttle_deferrals=int(number("throttle_deferrals") or 0),
    )


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
