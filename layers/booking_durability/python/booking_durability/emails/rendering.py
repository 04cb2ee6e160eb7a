"""Render the guest and admin emails from a queue job: subject, HTML and plain text.

Rendering is deterministic: the same job gives the same bytes every time, because the
provider's idempotency key covers the payload (Resend rejects a retried key whose body
differs). Nothing here reads the clock, iterates unordered collections, or makes ids.

Markup lives once: ``layout.html`` / ``layout.txt`` (the document) and ``email.html`` /
``email.txt`` (greeting, intro, a table of details, closing). The words live in copy templates,
one folder per locale (``locales/en``, ``locales/es``); this module picks them, and decides
which detail rows an email shows.
"""

from __future__ import annotations

import functools
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import jinja2
from babel.core import UnknownLocaleError, negotiate_locale
from babel.dates import format_date, format_datetime, format_time, get_timezone_name

from booking_durability.emails.models import AdminDriftEmailJob, GuestEmailJob
from booking_durability.metric_names import DriftReason

SUPPORTED_LOCALES: Final = ("en", "es")
DEFAULT_LOCALE: Final = "en"

# Resolved against this file, so it works from the repo and from the layer (/opt/python/...).
TEMPLATES_DIR: Final = Path(__file__).resolve().parent / "templates"

# Every error a template, babel or malformed job data can raise while rendering.
_RENDER_ERRORS: Final = (
    jinja2.TemplateError,
    UnknownLocaleError,
    LookupError,  # includes ZoneInfoNotFoundError
    ValueError,
    TypeError,
    AttributeError,
)


class RenderFailed(Exception):
    """The email could not be rendered; the consumer dead-letters it with ``render_failed``.

    The message names the email type, the locale and the kind of error only: the underlying
    error can quote template input, which includes the guest's name.
    """

    def __init__(self, email_type: str, locale: str, error: type[BaseException]) -> None:
        super().__init__(f"could not render {email_type} ({locale}): {error.__name__}")
        self.email_type = email_type
        self.locale = locale


@dataclass(frozen=True, repr=False)
class RenderedEmail:
    """A rendered email. ``repr`` shows sizes only: the content carries the guest's name."""

    subject: str
    html: str
    text: str

    def __repr__(self) -> str:
        return (
            f"RenderedEmail(subject=<{len(self.subject)} chars>, html=<{len(self.html)} chars>, "
            f"text=<{len(self.text)} chars>)"
        )


def resolve_locale(tag: str) -> str:
    """The supported locale for a BCP 47 tag, by babel's negotiation: exact match, else its
    language, else English. ``"es-MX"`` → ``"es"``, ``"en-GB"`` → ``"en"``, ``"fr"`` → ``"en"``."""
    found = negotiate_locale([tag.replace("_", "-")], SUPPORTED_LOCALES, sep="-")
    return found.lower() if found else DEFAULT_LOCALE


def render_email(job: GuestEmailJob | AdminDriftEmailJob) -> RenderedEmail:
    """Render ``job`` in its resolved locale and time zone.

    Raises ``RenderFailed`` (never carrying guest data) on any template or formatting error.
    """
    locale = resolve_locale(job.locale)
    try:
        if isinstance(job, AdminDriftEmailJob):
            context = _drift_context(job, locale)
        else:
            context = _booking_context(job, locale)
        return _render(context)
    except _RENDER_ERRORS as error:
        raise RenderFailed(job.email_type, locale, type(error)) from None


@functools.cache
def _environment() -> jinja2.Environment:
    # Created once per process, on first use: cold starts that never render pay nothing.
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,  # templates never change inside a running Lambda: skip the stat calls
    )


def _render(context: dict[str, Any]) -> RenderedEmail:
    environment = _environment()
    # One line whatever the data holds: a line break in a subject would start a new header.
    subject = " ".join(environment.get_template("subject.txt").render(context).split())
    context = {**context, "subject": subject}
    return RenderedEmail(
        subject=subject,
        html=environment.get_template("email.html").render(context),
        text=environment.get_template("email.txt").render(context),
    )


def _booking_context(job: GuestEmailJob, locale: str) -> dict[str, Any]:
    zone = zoneinfo.ZoneInfo(job.time_zone)
    data = job.data
    date, time = _local_date_and_time(data.starts_at, zone, locale)
    rows: list[tuple[str, str | None]] = [("restaurant", data.restaurant_name)]
    if job.email_type == "booking_updated" and data.previous_starts_at is not None:
        previous_date, previous_time = _local_date_and_time(data.previous_starts_at, zone, locale)
        rows += [
            ("previous_date", previous_date),
            ("previous_time", previous_time),
            ("new_date", date),
            ("new_time", time),
        ]
    else:
        rows += [("date", date), ("time", time)]
    rows += [("party_size", str(data.party_size)), ("reference", data.reference)]
    reason = _present(data.cancellation_reason)
    if job.email_type == "booking_cancelled" and reason is not None:
        rows.append(("cancellation_reason", reason))
    return {
        "locale": locale,
        "words_template": f"locales/{locale}/booking.txt",
        "copy_template": f"locales/{locale}/{job.email_type}.txt",
        "guest_name": _present(job.recipient.name),
        "restaurant_name": data.restaurant_name,
        "reference": data.reference,
        "rows": rows,
    }


def _drift_context(job: AdminDriftEmailJob, locale: str) -> dict[str, Any]:
    drift = job.data
    occurred_at = drift.occurred_at.astimezone(UTC)
    shown_at = format_datetime(occurred_at, "long", tzinfo=zoneinfo.ZoneInfo(job.time_zone), locale=locale)
    # The exact instant too, as the logs write it, so an operator can search for it.
    exact_at = occurred_at.isoformat(timespec="seconds").replace("+00:00", "Z")
    rows: list[tuple[str, str | None]] = [
        ("event_id", str(drift.event_id)),
        ("type", drift.type),
        ("occurred_at", f"{shown_at} ({exact_at})"),
        ("venue_id", drift.venue_id),
        ("original_hold_id", drift.original_hold_id),
        ("hold_id", drift.hold_id),
        ("original_policy_hash", drift.original_policy_hash),
        ("policy_hash", drift.policy_hash),
        ("policy_version", str(drift.policy_version)),
        ("attempts", str(drift.attempts)),
        ("reason", drift.reason),
    ]
    copy_template = f"locales/{locale}/{job.email_type}.txt"
    return {
        "locale": locale,
        # One email type in this family: its copy holds its shared words too.
        "words_template": copy_template,
        "copy_template": copy_template,
        "recovered": drift.type == "policy_drift.recovered",
        "interrupted": drift.reason == DriftReason.INTERRUPTED,
        "venue_id": drift.venue_id,
        "rows": rows,
    }


def _local_date_and_time(instant: datetime, zone: zoneinfo.ZoneInfo, locale: str) -> tuple[str, str]:
    """``instant`` as the guest reads it: date and time (with the zone's name) where they are."""
    local = instant.astimezone(zone)
    # The full date names the weekday, which is how a guest checks a booking against a plan.
    date = format_date(local, "full", locale=locale)
    time = format_time(local, "short", tzinfo=zone, locale=locale)
    # The long name ("Central European Standard Time"): babel's short names fall back to bare
    # offsets for most zone/locale pairs, which a guest cannot place.
    zone_name = get_timezone_name(local, width="long", locale=locale)
    return date, f"{time} ({zone_name})"


def _present(value: str | None) -> str | None:
    """``value`` without surrounding blanks, or None when nothing is left to show."""
    stripped = (value or "").strip()
    return stripped or None
