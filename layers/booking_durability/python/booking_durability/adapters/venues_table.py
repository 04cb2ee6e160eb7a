"""Venues on the reservations table: the current version and every version before it, each
with the canonical config JSON, its ``policy_hash`` and ``policy_version``."""

from __future__ import annotations

from datetime import datetime

from booking_durability.adapters.dynamodb import Expression, Item, Operation, TransactionRefused
from booking_durability.adapters.reservation_keys import VENUE_VERSION_PREFIX, venue_key, venue_partition
from booking_durability.adapters.table_store import TableStore
from booking_durability.reservations.ports import StoredVenue, WriteConflict
from booking_durability.times import iso


class VenuesTable(TableStore):
    """``reservations.ports.VenueStore`` on DynamoDB. A new version is written with the current
    item in one transaction, conditioned on the version read."""

    def venue(self, venue_id: str, version: int | None = None) -> StoredVenue | None:
        item = self.table.get(venue_key(venue_id, version))
        return None if item is None else stored_venue(venue_id, item)

    def venue_versions(self, venue_id: str) -> list[StoredVenue]:
        items = self.table.query(
            Expression(
                "pk = :pk AND begins_with(sk, :version)",
                {":pk": venue_partition(venue_id), ":version": VENUE_VERSION_PREFIX},
            )
        )
        return [stored_venue(venue_id, item) for item in items]

    def save_venue(self, venue: StoredVenue, previous_version: int | None, now: datetime) -> None:
        values = {
            "venue_id": venue.venue_id,
            "config": venue.config_json,
            "policy_hash": venue.policy_hash,
            "policy_version": venue.policy_version,
            "updated_at": iso(now),
        }
        current = Expression(
            "attribute_not_exists(pk)" if previous_version is None else "policy_version = :previous",
            {} if previous_version is None else {":previous": previous_version},
        )
        versioned = venue_key(venue.venue_id, venue.policy_version)
        try:
            self.table.transact(
                [
                    Operation(
                        "venue", "Put", item={**venue_key(venue.venue_id), **values}, condition=current
                    ),
                    Operation(
                        "version",
                        "Put",
                        item={**versioned, **values},
                        condition=Expression("attribute_not_exists(pk)"),
                    ),
                ]
            )
        except TransactionRefused as refused:
            # A refused current version comes back as it now is: the caller goes on from it.
            found = refused.refused.get("venue")
            venue_now = stored_venue(venue.venue_id, found) if found else None
            raise WriteConflict(frozenset(refused.refused), venue=venue_now) from None


def policy_check(venue_id: str, policy_hash: str) -> Operation:
    """A transaction's condition that the venue still has the policy ``policy_hash`` (``policy``)."""
    return Operation(
        "policy",
        "ConditionCheck",
        key=venue_key(venue_id),
        condition=Expression("policy_hash = :hash", {":hash": policy_hash}),
    )


def stored_venue(venue_id: str, item: Item) -> StoredVenue:
    return StoredVenue(
        venue_id=venue_id,
        config_json=item["config"],
        policy_hash=item["policy_hash"],
        policy_version=int(item["policy_version"]),
    )
