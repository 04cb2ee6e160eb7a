"""Rendering the guest and admin emails.

Golden files: ``tests/unit/golden/<email_type>.<locale>.{subject.txt,html,txt}`` hold the exact
bytes every email type renders to in every locale. After a deliberate change to the templates
or the copy, regenerate them and review the diff:

    UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/unit/test_rendering.py -q
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import jinja2
import pytest

from booking_durability.emails import rendering
from booking_durability.emails.models import EMAIL_JOB, AdminDriftEmailJob, EmailType, GuestEmailJob
from booking_durability.emails.rendering import RenderFailed, render_email, resolve_locale

GOLDEN_DIR = Path(__file__).parent / "golden"
UPDATE_GOLDEN = os.environ.get("UPDATE_GOLDEN") == "1"

EMAIL_TYPES = tuple(t.value for t in EmailType)  # every type, so a new one needs its golden files
LOCALES = ("en", "es")
GOLDEN_PARTS = ("subject.txt", "html", "txt")

GUEST_NAME = "Ana García"
GUEST_EMAIL = "ana.garcia@example.test"
RESTAURANT = "Casa Lucía"

# Babel writes some times with (narrow) no-break spaces, as CLDR asks: "9:00\u202fPM".
_NO_BREAK_SPACES = str.maketrans({"\u202f": " ", "\xa0": " "})


def readable(text: str) -> str:
    """``text`` with no-break spaces as plain spaces, so assertions read like the email."""
    return text.translate(_NO_BREAK_SPACES)


def guest_job(
    email_type: str = "booking_confirmed",
    *,
    locale: str = "en",
    time_zone: str = "Europe/Madrid",
    name: str | None = GUEST_NAME,
    **data: Any,
) -> GuestEmailJob:
    recipient: dict[str, Any] = {"email": GUEST_EMAIL}
    if name is not None:
        recipient["name"] = name
    fields: dict[str, Any] = {
        "restaurant_name": RESTAURANT,
        "party_size": 4,
        "starts_at": "2025-01-18T20:00:00Z",
        "reference": "BK-7Q2M",
    }
    if email_type == "booking_updated":
        fields["previous_starts_at"] = "2025-01-17T19:30:00Z"
    fields.update(data)
    job = EMAIL_JOB.validate_python(
        {
            "schema": "booking-email/v1",
            "job_id": "0b6d2f7e-4c1a-4e55-9a3e-2f1c8d7b6a50",
            "deliver_at": "2025-01-10T09:00:00Z",
            "booking_id": "bk_7Q2M",
            "email_type": email_type,
            "recipient": recipient,
            "locale": locale,
            "time_zone": time_zone,
            "data": fields,
        }
    )
    assert isinstance(job, GuestEmailJob)
    return job


def drift_job(*, locale: str = "en", recovered: bool = False) -> AdminDriftEmailJob:
    event_id = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
    body: dict[str, Any] = {
        "type": "policy_drift.recovered" if recovered else "policy_drift.unrecovered",
        "event_id": event_id,
        "occurred_at": "2025-01-18T20:00:05Z",
        "venue_id": "venue-madrid-01",
        "original_hold_id": "hold-0001",
        "original_policy_hash": "7b80010cc6e843103f7d54af0ad088b22cabf9552ab7c4eec84993a910e126e6",
        "policy_hash": "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0",
        "policy_version": 3,
        "attempts": 1 if recovered else 2,
    }
    if recovered:
        body["hold_id"] = "hold-0002"
    else:
        body["reason"] = "drift_repeated"
    job = EMAIL_JOB.validate_python(
        {
            "schema": "booking-email/v1",
            "job_id": "3d1f8a9c-2b7e-4f60-8c5d-1a2b3c4d5e6f",
            "deliver_at": "2025-01-18T20:00:06Z",
            "booking_id": event_id,
            "email_type": "admin_policy_drift",
            "recipient": {"email": "ops@example.test"},
            "locale": locale,
            "data": body,
        }
    )
    assert isinstance(job, AdminDriftEmailJob)
    return job


def golden_job(email_type: str, locale: str) -> GuestEmailJob | AdminDriftEmailJob:
    """The one job each golden file is rendered from."""
    if email_type == "admin_policy_drift":
        return drift_job(locale=locale)
    if email_type == "booking_cancelled":
        reason = {
            "en": "The restaurant is closed for a private event.",
            "es": "El restaurante cierra por un evento privado.",
        }[locale]
        return guest_job(email_type, locale=locale, cancellation_reason=reason)
    return guest_job(email_type, locale=locale)


def golden_path(email_type: str, locale: str, part: str) -> Path:
    return GOLDEN_DIR / f"{email_type}.{locale}.{part}"


# --- golden files ---------------------------------------------------------------------------


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("email_type", EMAIL_TYPES)
def test_every_email_renders_exactly_as_its_golden_files(email_type: str, locale: str) -> None:
    # Given the golden job of this type and locale
    job = golden_job(email_type, locale)

    # When it is rendered
    rendered = render_email(job)

    # Then subject, HTML and text are byte for byte the reviewed golden files
    actual = dict(zip(GOLDEN_PARTS, (rendered.subject, rendered.html, rendered.text), strict=True))
    for part, content in actual.items():
        path = golden_path(email_type, locale, part)
        if UPDATE_GOLDEN:
            GOLDEN_DIR.mkdir(exist_ok=True)
            path.write_bytes(content.encode())
        if not path.exists():
            pytest.fail(f"golden file {path.name} is missing: run UPDATE_GOLDEN=1 pytest {__file__}")
        assert content.encode() == path.read_bytes(), f"{path.name} differs from the golden file"


def test_golden_folder_holds_no_file_without_a_case() -> None:
    # Given every (type, locale, part) the golden test renders
    expected = {
        golden_path(email_type, locale, part).name
        for email_type in EMAIL_TYPES
        for locale in LOCALES
        for part in GOLDEN_PARTS
    }

    # When the golden folder is listed
    present = {path.name for path in GOLDEN_DIR.iterdir()} if GOLDEN_DIR.exists() else set()

    # Then every expected file is there and nothing stale lingers
    assert sorted(expected - present) == [], "missing golden files: run with UPDATE_GOLDEN=1"
    assert sorted(present - expected) == [], "stale golden files: delete them"


# --- locale ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tag", "resolved"),
    [
        ("en", "en"),
        ("es", "es"),
        ("es-MX", "es"),
        ("es-419", "es"),
        ("en-GB", "en"),
        ("ES", "es"),
        ("fr", "en"),
        ("pt-BR", "en"),
        ("zh-Hant-TW", "en"),
    ],
)
def test_locale_resolves_to_its_language_else_english(tag: str, resolved: str) -> None:
    assert resolve_locale(tag) == resolved


@pytest.mark.parametrize(("tag", "language"), [("es-MX", "es"), ("en-GB", "en"), ("fr", "en")])
def test_a_region_variant_or_unknown_locale_gets_the_fallback_email(tag: str, language: str) -> None:
    # Given a guest whose locale has no templates of its own
    job = guest_job(locale=tag)

    # When the email is rendered
    rendered = render_email(job)

    # Then it is exactly the email of the fallback language, lang attribute included
    assert rendered == render_email(guest_job(locale=language))
    assert f'<html lang="{language}"' in rendered.html


def test_mexican_spanish_guest_reads_spanish() -> None:
    rendered = render_email(guest_job("booking_confirmed", locale="es-MX"))

    assert rendered.subject == f"Tu reserva en {RESTAURANT} está confirmada"
    assert f"Hola, {GUEST_NAME}:" in rendered.text


# --- dates, times and time zones ------------------------------------------------------------


def test_booking_time_is_shown_in_the_guests_time_zone_in_winter() -> None:
    # Given a booking at 20:00 UTC for a guest in Madrid in January (UTC+1)
    job = guest_job(starts_at="2025-01-18T20:00:00Z", time_zone="Europe/Madrid")

    # When the email is rendered
    text = readable(render_email(job).text)

    # Then the guest reads 9 PM local time and the zone it is in
    assert "Date: Saturday, January 18, 2025" in text
    assert "Time: 9:00 PM (Central European Standard Time)" in text
    assert "8:00 PM" not in text


def test_booking_time_follows_daylight_saving_time() -> None:
    # Given the same UTC time in July, when Madrid is on UTC+2
    job = guest_job(starts_at="2025-07-18T20:00:00Z", time_zone="Europe/Madrid", locale="es")

    # When the email is rendered
    text = readable(render_email(job).text)

    # Then it shows 22:00 in summer time
    assert "Hora: 22:00 (hora de verano de Europa central)" in text


def test_date_moves_to_the_next_day_when_the_guests_zone_is_past_midnight() -> None:
    # Given 20:00 UTC on Saturday for a guest in Tokyo (UTC+9)
    job = guest_job(starts_at="2025-01-18T20:00:00Z", time_zone="Asia/Tokyo")

    # When the email is rendered
    text = readable(render_email(job).text)

    # Then the guest reads Sunday morning
    assert "Date: Sunday, January 19, 2025" in text
    assert "Time: 5:00 AM (Japan Standard Time)" in text


def test_default_time_zone_is_named_utc() -> None:
    text = readable(render_email(guest_job(time_zone="UTC")).text)

    assert "Time: 8:00 PM (Coordinated Universal Time)" in text


def test_spanish_email_uses_spanish_day_and_month_names_and_24_hour_time() -> None:
    # Given a Spanish guest in Madrid
    job = guest_job(locale="es", starts_at="2025-01-18T20:00:00Z", time_zone="Europe/Madrid")

    # When the email is rendered
    rendered = render_email(job)

    # Then the date and time read the Spanish way, in both parts
    for body in (readable(rendered.text), readable(rendered.html)):
        assert "sábado, 18 de enero de 2025" in body
        assert "21:00 (hora estándar de Europa central)" in body
        assert "January" not in body


# --- what each email type shows -------------------------------------------------------------


def test_updated_booking_shows_previous_and_new_time() -> None:
    # Given a booking moved from Friday 20:30 to Saturday 21:00, Madrid time
    job = guest_job(
        "booking_updated",
        previous_starts_at="2025-01-17T19:30:00Z",
        starts_at="2025-01-18T20:00:00Z",
    )

    # When the email is rendered
    text = readable(render_email(job).text)

    # Then the guest sees where it was and where it is now
    assert "Previous date: Friday, January 17, 2025" in text
    assert "Previous time: 8:30 PM (Central European Standard Time)" in text
    assert "New date: Saturday, January 18, 2025" in text
    assert "New time: 9:00 PM (Central European Standard Time)" in text


def test_cancelled_booking_shows_the_reason_when_given() -> None:
    job = guest_job("booking_cancelled", cancellation_reason="The kitchen is flooded.")

    rendered = render_email(job)

    assert "Reason: The kitchen is flooded." in rendered.text
    assert "The kitchen is flooded." in rendered.html


@pytest.mark.parametrize(
    ("email_type", "reason"),
    [("booking_cancelled", None), ("booking_cancelled", "   "), ("booking_confirmed", "Flooded kitchen")],
)
def test_reason_line_is_left_out_unless_a_cancellation_has_one(email_type: str, reason: str | None) -> None:
    job = guest_job(email_type, cancellation_reason=reason)

    rendered = render_email(job)

    assert "Reason" not in rendered.text
    assert "Reason" not in rendered.html
    assert "Flooded" not in rendered.text


@pytest.mark.parametrize(("locale", "greeting"), [("en", "Hello,"), ("es", "Hola:")])
def test_guest_without_a_name_gets_a_greeting_without_one(locale: str, greeting: str) -> None:
    # Given a recipient who gave no name
    job = guest_job(locale=locale, name=None)

    # When the email is rendered
    rendered = render_email(job)

    # Then the greeting stands alone and nothing says "None"
    assert f"\n{greeting}\n" in rendered.text
    assert f">{greeting}</p>" in rendered.html
    assert "None" not in rendered.text + rendered.html + rendered.subject


@pytest.mark.parametrize(
    ("recovered", "subject", "new_hold"), [(True, "recovered", "hold-0002"), (False, "not recovered", "—")]
)
def test_admin_email_shows_the_drift_ids_and_outcome(recovered: bool, subject: str, new_hold: str) -> None:
    # Given a drift event
    job = drift_job(recovered=recovered)

    # When the admin email is rendered
    rendered = render_email(job)

    # Then the operator sees the outcome, ids, hashes, version and attempts
    assert rendered.subject == f"Policy drift {subject} at venue venue-madrid-01"
    assert "Event: 7c9e6679-7425-40de-944b-e07fc1f90ae7" in rendered.text
    assert "Original hold: hold-0001" in rendered.text
    assert f"New hold: {new_hold}" in rendered.text
    assert f"Original policy hash: {job.data.original_policy_hash}" in rendered.text
    assert f"Current policy hash: {job.data.policy_hash}" in rendered.text
    assert "Policy version: 3" in rendered.text
    assert f"Attempts: {job.data.attempts}" in rendered.text
    assert "(2025-01-18T20:00:05Z)" in rendered.text


@pytest.mark.parametrize(
    ("locale", "says"),
    [("en", "was not repeated before that hold expired"), ("es", "nadie la repitió antes de que caducara")],
)
def test_admin_email_of_an_interrupted_flow_says_what_happened(locale: str, says: str) -> None:
    # Given a drift flow ended by the sweep: its request stopped after the hold was replaced
    job = drift_job(locale=locale)
    job = job.model_copy(update={"data": job.data.model_copy(update={"reason": "interrupted"})})
    # When the admin email is rendered, Then its intro tells that story, not a failed re-quote
    rendered = render_email(job)
    assert says in rendered.text
    assert says in rendered.html
    assert "interrupted" in rendered.text


# --- safety ---------------------------------------------------------------------------------


def test_html_escapes_names_while_text_and_subject_keep_them_verbatim() -> None:
    # Given a restaurant and a guest whose names hold markup and ampersands
    restaurant = "<script>alert(1)</script> Tom & Jerry's"
    name = 'Ana <b>"García"</b> & Co'
    job = guest_job(restaurant_name=restaurant, name=name)

    # When the email is rendered
    rendered = render_email(job)

    # Then HTML shows them as text, never as markup
    assert "<script>" not in rendered.html
    assert "<b>" not in rendered.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; Tom &amp; Jerry&#39;s" in rendered.html
    assert "Ana &lt;b&gt;&#34;García&#34;&lt;/b&gt; &amp; Co" in rendered.html
    # And the plain text and the subject carry them exactly as written
    assert restaurant in rendered.text
    assert name in rendered.text
    assert rendered.subject == f"Your booking at {restaurant} is confirmed"


def test_subject_stays_on_one_line_whatever_the_restaurant_name_holds() -> None:
    # Validation refuses line breaks in a restaurant name; rendering holds the line anyway
    data = guest_job().data.model_copy(update={"restaurant_name": "Casa\r\nBcc: victim@example.test"})
    job = guest_job().model_copy(update={"data": data})

    subject = render_email(job).subject

    assert "\r" not in subject
    assert "\n" not in subject
    assert subject == "Your booking at Casa Bcc: victim@example.test is confirmed"


def test_html_is_a_self_contained_accessible_document() -> None:
    rendered = render_email(guest_job(locale="es-MX", restaurant_name="Bar & Grill"))

    assert rendered.html.startswith('<!DOCTYPE html>\n<html lang="es"')
    assert "<title>Tu reserva en Bar &amp; Grill está confirmada</title>" in rendered.html
    assert '<th scope="row"' in rendered.html
    for external in ("http:", "https:", "src=", "<link", "url("):
        assert external not in rendered.html


def test_repr_of_a_rendered_email_hides_its_content() -> None:
    rendered = render_email(guest_job())

    assert GUEST_NAME not in repr(rendered)
    assert RESTAURANT not in repr(rendered)
    assert repr(rendered).startswith("RenderedEmail(subject=<")


# --- determinism ----------------------------------------------------------------------------


@pytest.mark.parametrize("email_type", EMAIL_TYPES)
def test_rendering_is_deterministic(email_type: str) -> None:
    # Given one job
    job = golden_job(email_type, "es")

    # When it is rendered twice, the second time by a freshly built template environment
    first = render_email(job)
    rendering._environment.cache_clear()
    second = render_email(job.model_copy(deep=True))

    # Then both are the same bytes, as the provider's idempotency key requires
    assert first == second
    assert (first.html.encode(), first.text.encode()) == (second.html.encode(), second.text.encode())


# --- failures -------------------------------------------------------------------------------


def _assert_no_guest_data(error: RenderFailed) -> None:
    message = str(error)
    for secret in (GUEST_NAME, GUEST_EMAIL, RESTAURANT, "BK-7Q2M"):
        assert secret not in message
    assert error.__cause__ is None
    assert error.__suppress_context__


def test_render_failure_names_the_email_and_nothing_about_the_guest() -> None:
    # Given a job carrying a time zone that does not exist (it bypassed validation)
    job = guest_job().model_copy(update={"time_zone": "Mars/Olympus_Mons"})

    # When it is rendered
    with pytest.raises(RenderFailed) as caught:
        render_email(job)

    # Then the error says what failed and is dead-lettered as render_failed, without guest data
    assert str(caught.value) == "could not render booking_confirmed (en): ZoneInfoNotFoundError"
    assert caught.value.email_type == "booking_confirmed"
    _assert_no_guest_data(caught.value)


def test_render_failure_hides_template_errors_that_quote_guest_data(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a template whose own error message quotes the restaurant name
    broken = jinja2.Environment(
        loader=jinja2.DictLoader({"subject.txt": "{% include restaurant_name %}"}),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    with pytest.raises(jinja2.TemplateNotFound, match=RESTAURANT):
        broken.get_template("subject.txt").render(restaurant_name=RESTAURANT)
    monkeypatch.setattr(rendering, "_environment", lambda: broken)

    # When an email is rendered with it
    with pytest.raises(RenderFailed) as caught:
        render_email(guest_job())

    # Then the failure carries only our own words
    assert str(caught.value) == "could not render booking_confirmed (en): TemplateNotFound"
    _assert_no_guest_data(caught.value)
