"""Venue, hold, confirmation and booking routes (docs/reference/http-api.md#routes)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Header, Path
from pydantic import BaseModel, ConfigDict, field_serializer

from booking_durability.api.resolver import Needed, json_response, json_text_response, responses
from booking_durability.drift_events import BookingId
from booking_durability.reservations import catalog, confirmation, holding
from booking_durability.reservations.attempt import BookingView, ConfirmationView
from booking_durability.reservations.catalog import Venue
from booking_durability.reservations.holds import (
    MAX_DAYS_AHEAD,
    Hold,
    HoldRequest,
    HoldStatus,
    SelectionSnapshot,
)
from booking_durability.reservations.ports import ReservationStore
from booking_durability.reservations.venues import SeatingPolicy, Table, VenueConfig
from booking_durability.times import iso, utc_now
from booking_durability.validation import ID_MAX_LENGTH, ID_PATTERN, DecimalInteger

router = Router()
#: The function's entry point supplies the store (``resolver.answer``).
store: Needed[ReservationStore] = Needed("reservation_store")

Id = Annotated[str, Path(min_length=1, max_length=ID_MAX_LENGTH, pattern=ID_PATTERN)]

#: ``If-Match`` as RFC 9110 writes it, with the contract's bare hash as one more form: ``*``, or a
#: comma-separated list of entity tags, each quoted (``"<hash>"``), weak (``W/"..."``) or bare.
IF_MATCH_PATTERN = (
    r'^[ \t]*(?:\*|(?:W/"[\x21\x23-\x7e]*"|"[\x21\x23-\x7e]*"|[\x21\x23-\x29\x2b\x2d-\x7e]+)'
    r'(?:[ \t]*,[ \t]*(?:W/"[\x21\x23-\x7e]*"|"[\x21\x23-\x7e]*"|[\x21\x23-\x29\x2b\x2d-\x7e]+))*)[ \t]*$'
)
_ETAG = {"ETag": {"description": "The policy hash, quoted", "required": True, "schema": {"type": "string"}}}


class VenueSaved(BaseModel):
    venue_id: str
    policy_version: int
    policy_hash: str


class VenueView(VenueSaved):
    tables: list[Table]
    policy: SeatingPolicy

    @classmethod
    def of(cls, venue: Venue) -> VenueView:
        return cls(
            venue_id=venue.venue_id,
            policy_version=venue.policy_version,
            policy_hash=venue.policy_hash,
            tables=list(venue.config.tables),
            policy=venue.config.policy,
        )


class HoldView(BaseModel):
    # Every field is answered, null where the hold has no value (an imported one may lack them)
    model_config = ConfigDict(json_schema_serialization_defaults_required=True)

    hold_id: str
    venue_id: str
    status: HoldStatus
    party_size: int
    starts_at: str
    ends_at: str
    expires_at: str
    table_ids: list[str]
    policy_hash: str | None = None
    policy_version: int | None = None
    # An imported hold's snapshot reads as it was given: a field it lacked is absent
    selection_snapshot: SelectionSnapshot | None = None

    # No return annotation: pydantic would document the answer's snapshot by it, not by its type.
    @field_serializer("selection_snapshot")
    def _as_given(self, snapshot: SelectionSnapshot | None):
        return None if snapshot is None else snapshot.model_dump(mode="json", exclude_unset=True)

    @classmethod
    def of(cls, hold: Hold, now: datetime) -> HoldView:
        """``hold`` as the API answers it, its status as of ``now``."""
        return cls(
            hold_id=hold.hold_id,
            venue_id=hold.venue_id,
            status=hold.effective_status(now),
            party_size=hold.party_size,
            starts_at=iso(hold.starts_at),
            ends_at=iso(hold.ends_at),
            expires_at=iso(hold.expires_at),
            table_ids=list(hold.table_ids),
            policy_hash=hold.policy_hash,
            policy_version=hold.policy_version,
            selection_snapshot=hold.selection_snapshot,
        )


class ConfirmBody(BaseModel):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    booking_id: BookingId


@router.put(
    "/v1/venues/<venue_id>",
    summary="Save a venue's tables and seating policy (a new version when it changes)",
    description=(
        "`If-Match` (optional) names the policy the change is based on: `*` (any), or a list of "
        "entity tags, each the policy hash quoted or bare; the venue's current hash must be one of "
        'them. A weak tag (`W/"..."`) never matches, as If-Match compares strongly.'
    ),
    responses=responses(
        VenueSaved,
        200,
        412,
        503,
        headers=_ETAG,
        notes={
            412: (
                "PRECONDITION_FAILED: If-Match names no tag of the venue's current policy, or the "
                "venue does not exist yet"
            ),
            422: (
                "besides what the schema states, rules that join fields: a table's min_party at most "
                "its capacity, table ids unique, and combinable_with naming other tables of the venue"
            ),
        },
    ),
)
def put_venue(
    venue_id: Id,
    config: Annotated[VenueConfig, Body()],
    if_match: Annotated[
        str | None, Header(alias="If-Match", min_length=1, max_length=1000, pattern=IF_MATCH_PATTERN)
    ] = None,
) -> Response[str]:
    saved = catalog.save_venue(store(), venue_id, config, if_match, utc_now())
    body = VenueSaved(venue_id=venue_id, policy_version=saved.policy_version, policy_hash=saved.policy_hash)
    return json_response(200, body, headers={"ETag": f'"{saved.policy_hash}"'})


@router.get(
    "/v1/venues/<venue_id>",
    summary="A venue's current tables and policy",
    responses=responses(VenueView, 200, 404, 503, headers=_ETAG, notes={404: "VENUE_NOT_FOUND"}),
)
def get_venue(venue_id: Id) -> Response[str]:
    venue = catalog.current_venue(store(), venue_id)
    return json_response(200, VenueView.of(venue), headers={"ETag": f'"{venue.policy_hash}"'})


@router.get(
    "/v1/venues/<venue_id>/versions/<n>",
    summary="One earlier (or the current) version of a venue",
    responses=responses(
        VenueView,
        200,
        404,
        503,
        headers=_ETAG,
        notes={404: "VERSION_NOT_FOUND: no such venue, or no such version of it"},
    ),
)
def get_venue_version(
    venue_id: Id, n: Annotated[int, DecimalInteger(ge=1, le=99_999_999), Path()]
) -> Response[str]:
    venue = catalog.venue_version(store(), venue_id, n)
    return json_response(200, VenueView.of(venue), headers={"ETag": f'"{venue.policy_hash}"'})


@router.post(
    "/v1/holds",
    summary="Hold the best free tables for a party",
    responses=responses(
        HoldView,
        201,
        404,
        409,
        503,
        notes={
            404: "VENUE_NOT_FOUND",
            409: "NO_AVAILABILITY (reason party_too_large or no_table)",
            422: (
                "besides what the schema states, rules of the clock and of the venue's policy: "
                f"starts_at in the future, at most {MAX_DAYS_AHEAD} days ahead and on the venue's "
                "slots; the duration (the venue's default when not given) a whole number of slots"
            ),
        },
    ),
)
def post_hold(request: Annotated[HoldRequest, Body()]) -> Response[str]:
    hold = holding.hold_tables(store(), request, utc_now)
    return json_response(201, HoldView.of(hold, utc_now()))


@router.get(
    "/v1/holds/<hold_id>",
    summary="A hold (expired once past expires_at while held)",
    responses=responses(HoldView, 200, 404, 503, notes={404: "HOLD_NOT_FOUND"}),
)
def get_hold(hold_id: Id) -> Response[str]:
    return json_response(200, HoldView.of(holding.find_hold(store(), hold_id), utc_now()))


@router.delete(
    "/v1/holds/<hold_id>",
    summary="Release a held hold and free its tables",
    responses=responses(
        HoldView,
        200,
        404,
        409,
        503,
        notes={404: "HOLD_NOT_FOUND", 409: "HOLD_NOT_ACTIVE: the hold is not held"},
    ),
)
def delete_hold(hold_id: Id) -> Response[str]:
    return json_response(200, HoldView.of(holding.release_hold(store(), hold_id, utc_now), utc_now()))


@router.post(
    "/v1/holds/<hold_id>/confirm",
    summary="Confirm a hold as a booking (re-quoted once if the venue's policy changed)",
    responses=responses(
        ConfirmationView,
        200,
        404,
        409,
        503,
        notes={
            404: "HOLD_NOT_FOUND",
            409: "HOLD_EXPIRED, HOLD_NOT_ACTIVE, POLICY_CHANGED or BOOKING_ID_TAKEN, by the hold's state",
            422: "HOLD_METADATA_INCOMPLETE, HOLD_INVALID or IDEMPOTENCY_KEY_REUSED, by stored state",
        },
    ),
)
def confirm_hold(
    hold_id: Id,
    body: Annotated[ConfirmBody, Body()],
    idempotency_key: Annotated[
        str | None, Header(alias="Idempotency-Key", min_length=1, max_length=255, pattern=r"^[\x21-\x7e]+$")
    ] = None,
) -> Response[str]:
    request = confirmation.ConfirmRequest(hold_id, body.booking_id, idempotency_key)
    # The body as first answered, byte for byte, for a repeat too
    return json_text_response(200, confirmation.confirm_with_policy_retry(store(), request, utc_now).text)


@router.get(
    "/v1/bookings/<booking_id>",
    summary="A booking",
    responses=responses(BookingView, 200, 404, 503, notes={404: "BOOKING_NOT_FOUND"}),
)
def get_booking(booking_id: Id) -> Response[str]:
    return json_response(200, BookingView.of(holding.find_booking(store(), booking_id)))


@router.delete(
    "/v1/bookings/<booking_id>",
    summary="Cancel a booking and free its tables (repeating it answers the same)",
    responses=responses(BookingView, 200, 404, 503, notes={404: "BOOKING_NOT_FOUND"}),
)
def delete_booking(booking_id: Id) -> Response[str]:
    return json_response(200, BookingView.of(holding.cancel_booking(store(), booking_id, utc_now)))
