"""Venue, hold, confirmation and booking routes (CONTRACT §1)."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Header, Path
from pydantic import BaseModel, ConfigDict

from booking_durability.api.resolver import json_response, responses
from booking_durability.drift_events import BookingId
from booking_durability.reservations import catalog, confirmation, holding
from booking_durability.reservations.holds import HoldRequest
from booking_durability.reservations.venues import VenueConfig
from booking_durability.times import utc_now
from booking_durability.wiring.reservations_api import store

router = Router()

Id = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_-]+$")]


class VenueSaved(BaseModel):
    venue_id: str
    policy_version: int
    policy_hash: str


class VenueView(VenueSaved):
    tables: list[dict[str, Any]]
    policy: dict[str, Any]


class HoldView(BaseModel):
    hold_id: str
    venue_id: str
    status: str
    party_size: int
    starts_at: str
    ends_at: str
    expires_at: str
    table_ids: list[str]
    policy_hash: str | None = None
    policy_version: int | None = None
    selection_snapshot: dict[str, Any] | None = None


class ConfirmBody(BaseModel):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    booking_id: BookingId


class PolicyDrift(BaseModel):
    recovered: bool
    attempts: int
    original_hold_id: str
    original_policy_hash: str


class ConfirmationView(BaseModel):
    booking_id: str
    hold_id: str
    venue_id: str
    table_ids: list[str]
    starts_at: str
    ends_at: str
    policy_hash: str
    policy_version: int
    status: str
    policy_drift: PolicyDrift | None


class BookingView(BaseModel):
    booking_id: str
    hold_id: str
    venue_id: str
    table_ids: list[str]
    starts_at: str
    ends_at: str
    status: str


@router.put(
    "/v1/venues/<venue_id>",
    summary="Save a venue's tables and seating policy (a new version when it changes)",
    responses=responses(VenueSaved, 200, 412, 422, 503),
)
def put_venue(
    venue_id: Id,
    config: Annotated[VenueConfig, Body()],
    if_match: Annotated[str | None, Header(alias="If-Match", max_length=200)] = None,
) -> Response[str]:
    saved = catalog.save_venue(store(), venue_id, config, if_match, utc_now())
    body = {"venue_id": venue_id, "policy_version": saved.policy_version, "policy_hash": saved.policy_hash}
    return json_response(200, body, headers={"ETag": f'"{saved.policy_hash}"'})


@router.get(
    "/v1/venues/<venue_id>",
    summary="A venue's current tables and policy",
    responses=responses(VenueView, 200, 404, 422, 503),
)
def get_venue(venue_id: Id) -> Response[str]:
    venue = catalog.current_venue(store(), venue_id)
    return json_response(200, venue.to_response(), headers={"ETag": f'"{venue.policy_hash}"'})


@router.get(
    "/v1/venues/<venue_id>/versions/<n>",
    summary="One earlier (or the current) version of a venue",
    responses=responses(VenueView, 200, 404, 422, 503),
)
def get_venue_version(venue_id: Id, n: Annotated[int, Path(ge=1, le=99_999_999)]) -> Response[str]:
    venue = catalog.venue_version(store(), venue_id, n)
    return json_response(200, venue.to_response(), headers={"ETag": f'"{venue.policy_hash}"'})


@router.post(
    "/v1/holds",
    summary="Hold the best free tables for a party",
    responses=responses(HoldView, 201, 404, 409, 422, 503),
)
def post_hold(request: Annotated[HoldRequest, Body()]) -> Response[str]:
    hold = holding.hold_tables(store(), request, utc_now)
    return json_response(201, hold.to_response(utc_now()))


@router.get(
    "/v1/holds/<hold_id>",
    summary="A hold (expired once past expires_at while held)",
    responses=responses(HoldView, 200, 404, 422, 503),
)
def get_hold(hold_id: Id) -> Response[str]:
    return json_response(200, holding.find_hold(store(), hold_id).to_response(utc_now()))


@router.delete(
    "/v1/holds/<hold_id>",
    summary="Release a held hold and free its tables",
    responses=responses(HoldView, 200, 404, 409, 422, 503),
)
def delete_hold(hold_id: Id) -> Response[str]:
    return json_response(200, holding.release_hold(store(), hold_id, utc_now).to_response(utc_now()))


@router.post(
    "/v1/holds/<hold_id>/confirm",
    summary="Confirm a hold as a booking (re-quoted once if the venue's policy changed)",
    responses=responses(ConfirmationView, 200, 404, 409, 422, 503),
)
def confirm_hold(
    hold_id: Id,
    body: Annotated[ConfirmBody, Body()],
    idempotency_key: Annotated[
        str | None, Header(alias="Idempotency-Key", min_length=1, max_length=255, pattern=r"^[\x21-\x7e]+$")
    ] = None,
) -> Response[str]:
    request = confirmation.ConfirmRequest(hold_id, body.booking_id, idempotency_key)
    return json_response(200, confirmation.confirm_with_policy_retry(store(), request, utc_now))


@router.get(
    "/v1/bookings/<booking_id>",
    summary="A booking",
    responses=responses(BookingView, 200, 404, 422, 503),
)
def get_booking(booking_id: Id) -> Response[str]:
    return json_response(200, holding.find_booking(store(), booking_id).to_response())


@router.delete(
    "/v1/bookings/<booking_id>",
    summary="Cancel a booking and free its tables (repeating it answers the same)",
    responses=responses(BookingView, 200, 404, 422, 503),
)
def delete_booking(booking_id: Id) -> Response[str]:
    return json_response(200, holding.cancel_booking(store(), booking_id, utc_now).to_response())
