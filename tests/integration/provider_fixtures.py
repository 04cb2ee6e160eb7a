"""Shared by the provider tests (unit and integration): a guest email, the loopback doubles,
and the check that a provider error reveals nothing about the guest.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from booking_durability.emails.providers.base import OutgoingEmail
from devstack.http_provider import HttpProviderDouble
from devstack.mail_sink import MailSink

SENDER = "Bookings <bookings@booking.local>"
GUEST_NAME = "Zoë Privatename"
GUEST_LOCAL_PART = "zoe.private"
GUEST_DOMAIN = "guest-mail.test"
SUBJECT = "Your table at Casa Ñandú is confirmed"


def guest_address(tag: str = "") -> str:
    """The guest's address, with an optional fault tag (``transient2``, ``throttle1``, ``permanent``)."""
    return f"{GUEST_LOCAL_PART}{'+' + tag if tag else ''}@{GUEST_DOMAIN}"


def guest_email(
    tag: str = "",
    *,
    booking_id: str = "bk-1001",
    job_id: str = "0b6c9d5e-2f4a-4c1b-9a7e-3d2f1e0c9b8a",
    name: str | None = GUEST_NAME,
    subject: str = SUBJECT,
) -> OutgoingEmail:
    """A rendered booking confirmation for the guest, ready for a provider."""
    return OutgoingEmail(
        dedupe_key=f"{booking_id}#booking_confirmed#0",
        job_id=job_id,
        sender=SENDER,
        to_email=guest_address(tag),
        to_name=name,
        subject=subject,
        html=f"<p>Hola {GUEST_NAME}, mesa para 4 el viernes.</p>",
        text=f"Hola {GUEST_NAME}, mesa para 4 el viernes.",
    )


def personal_fragments(email: OutgoingEmail) -> list[str]:
    """What must never appear in an error, a log line or a mail log entry."""
    fragments = [email.to_email, email.to_email.partition("@")[0], GUEST_LOCAL_PART, GUEST_DOMAIN]
    if email.to_name:
        fragments.append(email.to_name)
    fragments.append(email.subject)
    return fragments


def assert_reveals_nothing(error: BaseException, email: OutgoingEmail) -> None:
    """``error`` (as raised) says nothing about the guest, and chains nothing that could."""
    assert error.__cause__ is None, "a provider error must not chain the original error"
    assert error.__context__ is None, "a provider error must not carry the error it replaced"
    renderings = [str(error), repr(error), *map(repr, error.args), "".join(traceback.format_exception(error))]
    for fragment in personal_fragments(email):
        for rendering in renderings:
            assert fragment not in rendering


@contextmanager
def running_mail_sink(folder: Path, **options: object) -> Iterator[MailSink]:
    """The SMTP sink on a free loopback port, storing under ``folder``."""
    sink = MailSink(folder / "maildir", folder / "mail-log.jsonl", **options)  # type: ignore[arg-type]
    sink.start()
    try:
        yield sink
    finally:
        sink.stop()


@contextmanager
def running_http_double(latency_seconds: float = 0.0, **options: object) -> Iterator[HttpProviderDouble]:
    """The Resend-compatible double on a free loopback port."""
    double = HttpProviderDouble(latency_seconds, **options)  # type: ignore[arg-type]
    double.start()
    try:
        yield double
    finally:
        double.stop()
