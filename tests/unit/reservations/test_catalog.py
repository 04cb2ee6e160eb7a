"""The policy a hold was quoted under, found from its hash (and version): without a read once this
process has seen that policy, since a policy hash names one config for ever."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from booking_durability.reservations import catalog
from booking_durability.reservations.catalog import quoted_policy
from booking_durability.reservations.ports import StoredVenue
from booking_durability.reservations.venues import VenueConfig, canonical_json, policy_hash
from tests.unit.reservations.builders import config


@dataclass
class Versions:
    """A venue's versions in memory, counting the reads."""

    stored: list[StoredVenue] = field(default_factory=list)
    reads: list[str] = field(default_factory=list)

    def add(self, venue_config: VenueConfig) -> StoredVenue:
        version = StoredVenue(
            "casa", canonical_json(venue_config), policy_hash(venue_config), len(self.stored) + 1
        )
        self.stored.append(version)
        return version

    def venue(self, venue_id: str, version: int | None = None) -> StoredVenue | None:
        self.reads.append("current" if version is None else f"version {version}")
        found = [v for v in self.stored if version in (None, v.policy_version)]
        return found[-1] if found else None

    def venue_versions(self, venue_id: str) -> list[StoredVenue]:
        self.reads.append("versions")
        return list(self.stored)


@pytest.fixture(autouse=True)
def no_policy_known(monkeypatch: pytest.MonkeyPatch) -> None:
    """A process that has seen no policy yet (this one's cache is left as it was)."""
    monkeypatch.setattr(catalog, "_POLICIES", catalog._PolicyCache(catalog.CACHED_POLICIES))


def forget_policies() -> None:
    catalog._POLICIES = catalog._PolicyCache(catalog.CACHED_POLICIES)


def test_the_current_policy_is_read_once_then_known_by_its_hash() -> None:
    versions = Versions()
    first = versions.add(config(max_party_size=10))
    assert quoted_policy(versions, "casa", first.policy_hash, 1) == config(max_party_size=10).normalized()
    assert versions.reads == ["current"]
    assert quoted_policy(versions, "casa", first.policy_hash, None) is not None
    assert versions.reads == ["current"]  # known: no read


def test_an_older_policy_is_read_by_its_version_else_found_by_its_hash() -> None:
    versions = Versions()
    first = versions.add(config(max_party_size=10))
    versions.add(config(max_party_size=4))
    # By its version number (after the current one, which is not it)
    assert quoted_policy(versions, "casa", first.policy_hash, 1) is not None
    assert versions.reads == ["current", "version 1"]
    forget_policies()
    versions.reads.clear()
    # Without a version (or with one of another hash): among every version, by hash
    assert quoted_policy(versions, "casa", first.policy_hash, 2) is not None
    assert versions.reads == ["current", "version 2", "versions"]


def test_a_policy_no_version_has_is_none() -> None:
    versions = Versions()
    versions.add(config())
    assert quoted_policy(versions, "casa", "0" * 64, None) is None


def test_the_cache_keeps_the_most_recently_used_policies() -> None:
    cache = catalog._PolicyCache(2)
    versions = Versions()
    stored = [versions.add(config(max_party_size=size)) for size in (2, 3, 4)]
    cache.config(stored[0])
    cache.config(stored[1])
    assert cache.get(stored[0].policy_hash) is not None  # used again: kept
    cache.config(stored[2])
    assert cache.get(stored[1].policy_hash) is None
    assert cache.get(stored[0].policy_hash) is not None
    assert cache.get(stored[2].policy_hash) is not None
