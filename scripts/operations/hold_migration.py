"""The reservations table as the import and backfill scripts use it
(docs/reference/importing-holds.md#targets), and where it is.

``HoldMigrationTable`` is the service's own ``ReservationsTable`` (same items, same ownership
writes) with what only the scripts need: an imported hold written with
its ownership, a paginated scan of active holds, and fills and releases conditioned on the hold's
document being exactly what was read. ``locate_local`` / ``locate_in_aws`` find the table: the
local stack's ``stack.json``, or in AWS a named table or the stack's ``ReservationsTableName``
output (``stack_lookup``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
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
from booking_durability.adapters.reservations_table import (
    ReservationsTable,
    hold_item,
    hold_key,
    stored_hold,
)
from booking_durability.errors import StoreUnavailable
from booking_durability.reservations.holds import Hold, HoldStatus
from booking_durability.reservations.ownership import SlotWrite
from booking_durability.reservations.ports import StoredHold
from booking_durability.stack_outputs import StackOutput
from booking_durability.times import iso
from operations.migration import ActivePage, ScannedHold
from operations.stack_lookup import StackNotFound, local_stack, stack_outputs

LOCAL_TABLE_KEY = "reservations"  # its name under stack.json's "tables" (the functions' RESERVATIONS_TABLE)
TABLE_OUTPUT = StackOutput.RESERVATIONS_TABLE_NAME


class HoldMigrationTable(ReservationsTable):
    def import_hold(
        self, hold: Hold, owns_until: datetime, writes: Sequence[SlotWrite], policy_hash: str, now: datetime
    ) -> None:
        self._transact(
            [
                # The interval's buffer is this policy's: a change meanwhile makes the caller re-read.
                self._policy_check(hold.venue_id, policy_hash),
                Operation(
                    "hold",
                    "Put",
                    item={**hold_item(hold, owns_until), "imported_at": iso(now)},
                    condition=Expression("attribute_not_exists(pk)"),
                ),
                *self._slot_operations(hold.venue_id, writes),
            ]
        )

    def active_holds(self, now: datetime, page_size: int) -> Iterator[ActivePage]:
        active = Expression(
            "begins_with(pk, :hold) AND sk = :sk AND #status = :held AND expires_epoch > :now",
            {":hold": "HOLD#", ":sk": "HOLD", ":held": HoldStatus.HELD.value, ":now": int(now.timestamp())},
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
        move = self._move_hold(hold.hold_id, HoldStatus.HELD, HoldStatus.RELEASED, now, live=True)
        if move.condition is None:
            raise ValueError("moving a held hold is conditional on its status")
        unchanged = replace(move, condition=move.condition & Expression("doc = :read", {":read": token}))
        self._transact([unchanged, *self._slot_operations(hold.venue_id, writes)])


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
