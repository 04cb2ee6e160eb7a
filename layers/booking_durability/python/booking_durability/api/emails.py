"""Email routes: ``POST /v1/emails``, status, cancel one, cancel a booking's
(docs/reference/http-api.md#emails)."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query

from booking_durability.api.resolver import Needed, json_response, responses
from booking_durability.emails import requests
from booking_durability.emails.guest import MAX_REVISION, EmailRef, EmailRequest, EmailType
from booking_durability.emails.requests import (
    BookingEmailsCancelled,
    EmailAccepted,
    EmailCancelled,
    EmailOutbox,
    EmailState,
)
from booking_durability.times import utc_now
from booking_durability.validation import ID_MAX_LENGTH, ID_PATTERN, DecimalInteger

router = Router()
#: The function's entry point supplies the outbox (``resolver.answer``).
outbox: Needed[EmailOutbox] = Needed("email_outbox")

Revision = Annotated[
    int,
    DecimalInteger(ge=0, le=MAX_REVISION),
    Query(description="booking_updated is sent once per revision"),
]
BookingIdPath = Annotated[str, Path(min_length=1, max_length=ID_MAX_LENGTH, pattern=ID_PATTERN)]


@router.post(
    "/v1/emails",
    summary="Record and publish a guest email",
    responses=responses(
        EmailAccepted,
        202,
        503,
        notes={
            422: "besides what the schema states, a rule of the clock: deliver_at at most ten years ahead"
        },
    ),
)
def post_email(request: Annotated[EmailRequest, Body()]) -> Response[str]:
    return json_response(202, requests.request_email(outbox(), request, utc_now()))


@router.get(
    "/v1/emails/<booking_id>/<email_type>",
    summary="What became of one email",
    responses=responses(
        EmailState, 200, 404, 503, notes={404: "NOT_FOUND: the service has no record of this email"}
    ),
)
def get_email(
    booking_id: BookingIdPath, email_type: Annotated[EmailType, Path()], revision: Revision = 0
) -> Response[str]:
    ref = EmailRef(booking_id, email_type, revision)
    return json_response(200, requests.email_status(outbox(), ref, utc_now()))


@router.delete(
    "/v1/emails/<booking_id>/<email_type>",
    summary="Cancel one email (a tombstone when the service has no record of it)",
    responses=responses(
        EmailCancelled, 200, 409, 503, notes={409: "ALREADY_SENT or SEND_IN_PROGRESS, by the email's state"}
    ),
)
def delete_email(
    booking_id: BookingIdPath, email_type: Annotated[EmailType, Path()], revision: Revision = 0
) -> Response[str]:
    ref = EmailRef(booking_id, email_type, revision)
    return json_response(200, requests.cancel_email(outbox(), ref, utc_now()))


@router.delete(
    "/v1/emails/<booking_id>",
    summary="Cancel every email of a booking not sent yet",
    description=(
        "Answers `cancelled`: the keys now cancelled, sorted. Those are the booking's recorded "
        "emails neither sent nor held by a consumer under a live lease (one already cancelled, "
        "suppressed or expired is recorded cancelled again and listed). A job published straight "
        "to the queue and not yet claimed has no record and is not cancelled: cancel it by its key."
    ),
    responses=responses(BookingEmailsCancelled, 200, 503),
)
def delete_booking_emails(booking_id: BookingIdPath) -> Response[str]:
    return json_response(200, requests.cancel_booking_emails(outbox(), booking_id, utc_now()))
