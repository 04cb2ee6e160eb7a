"""The reservations table as the import and backfill scripts use it
(docs/reference/importing-holds.md#targets), and where it is.

``HoldMigrationTable`` composes the service's own stores of venues and holds (same items, same
ownership writes) with what only the scripts need: an imported hold written with its ownership,
a paginated scan of active holds, and fills and releases conditioned on the hold's document
being exactly what was read. ``locate_local`` / ``locate_in_aws`` find the table: the local
stack's ``stack.json``, or in AWS a named table or the stack's ``ReservationsTableName``
output (``stack_lookup``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from booking_durability.adapters import aws
from booking_durability.adapters.aws import error_code
from booking_durability.adapters.dynamodb import (
    DynamoTable,
    Expression,
    Item,
    Operation,
    from_dynamo,
    to_dynamo,
)
from booking_durability.adapters.holds_table import (
    HoldsTable,
    hold_item,
    move_hold,
    slot_operations,
    stored_hold,
)
from booking_durability.adapters.reservation_keys import HOLD_KEY_PREFIX, hold_key
from booking_durability.adapters.table_store import transact
from booking_durability.adapters.venues_table import VenuesTable, policy_check
from booking_durability.errors import StoreUnavailable
from booking_durability.reservations.holds import Hold, HoldStatus
from booking_durability.reservations.intervals import Interval
from booking_durability.reservations.ownership import Slot, SlotRecord, SlotWrite
from booking_durability.reservations.ports import StoredHold, StoredVenue
from booking_durability.stack_outputs import StackOutput
from booking_durability.times import iso
from operations.migration import ActivePage, ScannedHold
from operations.stack_lookup import StackNotFound, local_stack, stack_outputs

LOCAL_TABLE_KEY = "reservations"  # its name under stack.json's "tables" (the functions' RESERVATIONS_TABLE)
TABLE_OUTPUT = StackOutput.RESERVATIONS_TABLE_NAME


class HoldMigrationTable:
    """``operations.migration.MigrationStore`` on the reservations table: the service's own
    stores of venues and holds, and the writes only the scripts make, built the same way."""

    def __init__(self, table: DynamoTable) -> None:
        self.table = table
        self.venues = VenuesTable(table)
        self.holds = HoldsTable(table)

    def venue(self, venue_id: str, version: int | None = None) -> StoredVenue | None:
        return self.venues.venue(venue_id, version)

    def venue_versions(self, venue_id: str) -> list[StoredVenue]:
        return self.venues.venue_versions(venue_id)

    def hold(self, hold_id: str) -> StoredHold | None:
        return self.holds.hold(hold_id)

    def slot_records(self, venue_id: str, interval: Interval) -> dict[Slot, SlotRecord]:
        return self.holds.slot_records(venue_id, interval)

    def import_hold(
        self, hold: Hold, owns_until: datetime, writes: Sequence[SlotWrite], policy_hash: str, now: datetime
    ) -> None:
        transact(
            self.table,
            [
                # The interval's buffer is this policy's: a change meanwhile makes the caller re-read.
                policy_check(hold.venue_id, policy_hash),
                Operation(
                    "hold",
                    "Put",
                    item={**hold_item(hold, owns_until), "imported_at": iso(now)},
                    condition=Expression("attribute_not_exists(pk)"),
                ),
                *slot_operations(hold.venue_id, writes),
            ],
        )

    def active_holds(self, now: datetime, page_size: int) -> Iterator[ActivePage]:
        active = Expression(
            "begins_with(pk, :hold) AND sk = :sk AND #status = :held AND expires_epoch > :now",
            {
                ":hold": HOLD_KEY_PREFIX,
                ":sk": hold_key("")["sk"],
                ":held": HoldStatus.HELD.value,
                ":now": int(now.timestamp()),
            },
            {"#status": "status"},
        )
        for items, examined in scan_pages(self.table, active, page_size):
            yield ActivePage([ScannedHold(stored_hold(item), item["doc"]) for item in items], examined)

    def fill_hold(self, filled: StoredHold, token: str, now: datetime) -> bool:
        hold = filled.hold
        written = self.table.update(
            hold_key(hold.hold_id),
            Expression(
                "SET doc = :doc, updated_at = :now_iso, backfilled_at = :now_iso",
                {":doc": hold_item(hold, filled.owns_until)["doc"], ":now_iso": iso(now)},
            ),
            condition=Expression(
                "#status = :held AND doc = :read",
                {":held": HoldStatus.HELD.value, ":read": token},
                {"#status": "status"},
            ),
            return_item=False,
        )
        return written.accepted

    def release_unchanged(self, hold: Hold, token: str, writes: Sequence[SlotWrite], now: datetime) -> None:
        unchanged = Expression("doc = :read", {":read": token})
        released = move_hold(
            hold.hold_id, HoldStatus.HELD, HoldStatus.RELEASED, now, live=True, unchanged=unchanged
        )
        transact(self.table, [released, *slot_operations(hold.venue_id, writes)])


def scan_pages(table: DynamoTable, filter: Expression, page_size: int) -> Iterator[tuple[list[Item], int]]:
    """The items ``filter`` keeps, page by page (``page_size`` items examined per request), with
    how many each page examined. Strongly consistent: a re-run right after a write sees it."""
    request: dict[str, Any] = {
        "TableName": table.name,
        "FilterExpression": filter.text,
        "ConsistentRead": True,
        "Limit": page_size,
    }
    if filter.names:
        request["ExpressionAttributeNames"] = dict(filter.names)
    if filter.values:
        request["ExpressionAttributeValues"] = to_dynamo(filter.values)
    while True:
        try:
            page = table.client.scan(**request)
        except (ClientError, BotoCoreError) as exc:
            raise StoreUnavailable(f"scan failed: {error_code(exc)}") from None
        yield [from_dynamo(item) for item in page.get("Items", [])], int(page.get("ScannedCount", 0))
        if "LastEvaluatedKey" not in page:
            return
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


# -- where the table is -------------------------------------------------------------------------


def locate_local(stack_file: Path, table: str | None = None) -> HoldMigrationTable:
    """The table of the local stack ``stack_file`` describes (``make run``), on its moto server.
    Raises ``StackNotFound``, also when that server does not answer (a stack.json left behind)."""
    name, client = local_stack(
        stack_file, "dynamodb", lambda stack: table or stack["tables"][LOCAL_TABLE_KEY]
    )
    where = f"on the local stack at {client.meta.endpoint_url}: is `make run` running?"
    return _answering(HoldMigrationTable(DynamoTable(name, client)), where)


def locate_in_aws(table: str | None, stack_name: str) -> HoldMigrationTable:
    """``table`` in the account and region of the AWS environment, or the stack's table output.
    Raises ``StackNotFound``, also when the table cannot be read."""
    if table is None:
        [table] = stack_outputs(stack_name, TABLE_OUTPUT)
    return _answering(HoldMigrationTable(DynamoTable(table, aws.client("dynamodb"))), "in AWS")


def locate(*, in_aws: bool, table: str | None, stack_name: str, stack_file: Path) -> HoldMigrationTable:
    """The scripts' one way to find the table: in AWS with ``in_aws``, else the local stack."""
    return locate_in_aws(table, stack_name) if in_aws else locate_local(stack_file, table)


def _answering(found: HoldMigrationTable, where: str) -> HoldMigrationTable:
    """``found``, once DynamoDB has described it: a table nobody answers for is not found, and a
    script stops before its first line instead of part-way through."""
    name = found.table.name
    try:
        found.table.client.describe_table(TableName=name)
    except (ClientError, BotoCoreError) as exc:
        code = error_code(exc)
        what = (
            f"no table {name}"
            if code == "ResourceNotFoundException"
            else f"table {name} not reachable ({code})"
        )
        raise StackNotFound(f"{what} {where}") from None
    return found
