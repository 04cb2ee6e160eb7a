"""Venues and their versioned seating policies (``PUT``/``GET /v1/venues/...``,
docs/reference/http-api.md#versions-and-if-match).

A ``PUT`` that changes the policy hash writes the next version, conditioned on the version it
read, so two concurrent PUTs never get the same version; one that does not change it writes
nothing. ``If-Match`` must name the current policy (see ``if_match_holds``).

A policy hash is the hash of one config, so the config a hash names never changes: configs are
parsed once per process and kept by hash (``_POLICIES``), and the policy a hold was quoted under
is often known without reading the venue again.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime

from booking_durability.errors import Busy
from booking_durability.observability import logger
from booking_durability.reservations.ports import StoredVenue, VenueReads, VenueStore, WriteConflict
from booking_durability.reservations.refusals import PreconditionFailed, VenueNotFound, VersionNotFound
from booking_durability.reservations.venues import VenueConfig, canonical_json, hash_of

# Versioned PUTs racing on one venue: each round at least one of them lands.
MAX_SAVE_ATTEMPTS = 10
# Parsed configs kept per process, by policy hash: a config is at most a few hundred KiB parsed.
CACHED_POLICIES = 64


@dataclass(frozen=True)
class Venue:
    """A venue as stored, with its config parsed."""

    venue_id: str
    config: VenueConfig
    policy_hash: str
    policy_version: int

    @classmethod
    def from_stored(cls, stored: StoredVenue) -> Venue:
        return cls(
            venue_id=stored.venue_id,
            config=_POLICIES.config(stored),
            policy_hash=stored.policy_hash,
            policy_version=stored.policy_version,
        )


def save_venue(
    store: VenueStore, venue_id: str, config: VenueConfig, if_match: str | None, now: datetime
) -> StoredVenue:
    """Store ``config`` as the venue's next version unless it is what the venue already has."""
    canonical = canonical_json(config)
    wanted_hash = hash_of(canonical)
    current = store.venue(venue_id)
    for _ in range(MAX_SAVE_ATTEMPTS):
        if if_match is not None and not if_match_holds(
            if_match, None if current is None else current.policy_hash
        ):
            raise PreconditionFailed("If-Match does not name the venue's current policy")
        if current is not None and current.policy_hash == wanted_hash:
            return current
        version = 1 if current is None else current.policy_version + 1
        saved = StoredVenue(venue_id, canonical, wanted_hash, version)
        try:
            store.save_venue(saved, None if current is None else current.policy_version, now)
        except WriteConflict as conflict:
            # Another writer got there first: decide again on the venue as the refusal found it.
            current = conflict.venue if "venue" in conflict.refused else store.venue(venue_id)
            continue
        logger.info(
            "venue policy saved",
            extra={"venue_id": venue_id, "policy_version": version, "policy_hash": wanted_hash},
        )
        return saved
    raise Busy("the venue kept changing while this policy was saved")


def current_venue(store: VenueReads, venue_id: str) -> Venue:
    stored = store.venue(venue_id)
    if stored is None:
        raise VenueNotFound("no venue has this id")
    return Venue.from_stored(stored)


def venue_version(store: VenueReads, venue_id: str, version: int) -> Venue:
    stored = store.venue(venue_id, version)
    if stored is None:
        raise VersionNotFound("the venue has no such version")
    return Venue.from_stored(stored)


def if_match_holds(if_match: str, current_hash: str | None) -> bool:
    """Whether an ``If-Match`` value names the venue's current policy (RFC 9110, 13.1.1).

    ``*`` holds for any venue that exists. Otherwise the value is a comma-separated list of entity
    tags and holds when one of them is the current hash, quoted or (as the contract also allows)
    bare. A weak tag (``W/"..."``) never holds: If-Match compares strongly. Nothing holds for a
    venue that does not exist.
    """
    if current_hash is None:
        return False
    value = if_match.strip()
    if value == "*":
        return True
    for tag in (part.strip() for part in value.split(",")):
        if len(tag) >= 2 and tag.startswith('"') and tag.endswith('"'):
            tag = tag[1:-1]
        if tag == current_hash:
            return True
    return False


def quoted_policy(
    store: VenueReads, venue_id: str, policy_hash: str, policy_version: int | None
) -> VenueConfig | None:
    """The config of the venue version a hold was quoted under: the version numbered
    ``policy_version`` when it has ``policy_hash``, else the latest with that hash. None when no
    version of the venue has that policy.

    Known without a read when this process has seen the policy (a hash names one config for
    ever); otherwise read: the current version first, the one a hold mostly names.
    """
    known = _POLICIES.get(policy_hash)
    if known is not None:
        return known
    current = store.venue(venue_id)
    if current is not None and current.policy_hash == policy_hash:
        return _POLICIES.config(current)
    if policy_version is not None:
        named = store.venue(venue_id, policy_version)
        if named is not None and named.policy_hash == policy_hash:
            return _POLICIES.config(named)
    same = [v for v in store.venue_versions(venue_id) if v.policy_hash == policy_hash]
    return _POLICIES.config(max(same, key=lambda v: v.policy_version)) if same else None


class _PolicyCache:
    """Parsed configs by policy hash, the least recently used dropped first (thread-safe)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._configs: OrderedDict[str, VenueConfig] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, policy_hash: str) -> VenueConfig | None:
        with self._lock:
            config = self._configs.get(policy_hash)
            if config is not None:
                self._configs.move_to_end(policy_hash)
            return config

    def config(self, stored: StoredVenue) -> VenueConfig:
        """The config ``stored`` carries, parsed once per process."""
        known = self.get(stored.policy_hash)
        if known is not None:
            return known
        config = VenueConfig.from_stored(stored.config_json)
        with self._lock:
            self._configs[stored.policy_hash] = config
            if len(self._configs) > self._size:
                self._configs.popitem(last=False)
        return config


_POLICIES = _PolicyCache(CACHED_POLICIES)
