"""The email request and queue message models (docs/reference/http-api.md#email-request,
docs/reference/queue-message.md#message-body)."""

from __future__ import annotations

import json
import runpy
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import jsonschema
import pytest
from pydantic import ValidationError

from booking_durability.emails.models import (
    EMAIL_JOB,
    EmailRequest,
    job_json_schema,
    message_id_for,
)
from booking_durability.validation import safe_errors
from tests.builders import GUEST_EMAIL, GUEST_NAME, PII, T0, email_request, job

ROOT = Path(__file__).resolve().parents[2]


def _updated_request(**overrides: object) -> dict:
    data = {**email_request()["data"], "previous_starts_at": "2026-12-24T19:00:00Z"}
    return email_request(email_type="booking_updated", data=data, **overrides)


def test_dedupe_key_is_booking_type_and_revision() -> None:
    request = EmailRequest.model_validate(_updated_request(revision=3))
    assert request.dedupe_key == "bk_123#booking_updated#3"


def test_message_id_is_sha256_of_dedupe_key_at_booking_local() -> None:
    assert message_id_for("bk_1#booking_confirmed#0") == (
        "<53add5b4f5c3ea323c0033d7f5d69d5eab66144102c6fdf962965fd5830cdbe6@booking.local>"
    )


def test_job_carries_schema_job_id_and_delivery_time_from_delay() -> None:
    # Given a request delayed by two hours  When the producer builds its job
    job_ = EmailRequest.model_validate(email_request(delay_seconds=7200)).to_job(T0)
    # Then the message says when to deliver, and which schema it follows
    body = json.loads(job_.to_message_body())
    assert body["schema"] == "booking-email/v1"
    assert body["deliver_at"] == "2026-12-01T14:00:00Z"
    assert "delay_seconds" not in body
    assert EMAIL_JOB.validate_json(job_.to_message_body()) == job_


def test_deliver_at_in_the_past_means_now() -> None:
    request = EmailRequest.model_validate(email_request(deliver_at="2020-01-01T00:00:00Z"))
    assert request.to_job(T0).deliver_at == T0


def test_deliver_at_in_another_offset_is_kept_as_the_same_instant() -> None:
    request = EmailRequest.model_validate(email_request(deliver_at="2026-12-01T15:00:00+01:00"))
    assert request.to_job(T0).deliver_at == T0 + timedelta(hours=2)


@pytest.mark.parametrize(
    ("overrides", "location"),
    [
        ({"booking_id": "bad id!"}, "booking_id"),
        ({"email_type": "admin_policy_drift"}, "email_type"),
        ({"revision": -1}, "revision"),
        ({"time_zone": "Mars/Olympus_Mons"}, "time_zone"),
        ({"deliver_at": "2026-12-01T12:00:00Z", "delay_seconds": 5}, "delay_seconds"),
        ({"deliver_at": "2099-01-01T00:00:00Z"}, "deliver_at"),
        ({"deliver_at": "2026-12-01T12:00:00"}, "deliver_at"),
        ({"recipient": {"email": "not-an-address"}}, "recipient.email"),
        ({"unexpected": 1}, "unexpected"),
    ],
)
def test_invalid_requests_are_refused_with_the_failing_location(overrides: dict, location: str) -> None:
    with pytest.raises(ValidationError) as caught:
        EmailRequest.model_validate(email_request(**overrides))
    assert location in {".".join(map(str, e["loc"])) for e in safe_errors(caught.value)}


def test_booking_updated_needs_the_previous_time() -> None:
    with pytest.raises(ValidationError):
        EmailRequest.model_validate(email_request(email_type="booking_updated"))
    assert EmailRequest.model_validate(_updated_request()).data.previous_starts_at is not None


def test_validation_errors_never_echo_submitted_values() -> None:
    # Given a request whose personal fields are all wrong in ways that quote them
    bad = email_request(
        recipient={"email": f"{GUEST_NAME} <{GUEST_EMAIL}>@@", "name": GUEST_NAME * 50},
        booking_id=GUEST_EMAIL,
        locale=GUEST_NAME,
        time_zone=GUEST_NAME,
    )
    with pytest.raises(ValidationError) as caught:
        EmailRequest.model_validate(bad)
    # Then neither the contract's error list nor the exception text carries them
    # (unescaped: json.dumps would write "é" as "\u00e9", and the name could never match)
    rendered = (
        json.dumps(safe_errors(caught.value), ensure_ascii=False) + str(caught.value) + repr(caught.value)
    )
    for secret in (*PII, "Pérez"):
        assert secret not in rendered, secret


def test_locale_accepts_bcp47_tags() -> None:
    assert EmailRequest.model_validate(email_request(locale="es-MX")).locale == "es-MX"


def test_queue_message_validates_against_committed_schema() -> None:
    schema = json.loads((ROOT / "schemas" / "booking-email-v1.json").read_text())
    jsonschema.validate(job(), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**job(), "schema": "booking-email/v2"}, schema)


def test_committed_schema_is_generated_from_the_models() -> None:
    committed = json.loads((ROOT / "schemas" / "booking-email-v1.json").read_text())
    assert committed == job_json_schema(), "run: .venv/bin/python scripts/generate_schemas.py"


def test_schema_check_passes_on_the_committed_tree() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "generate_schemas.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout


def test_schema_check_fails_on_a_stale_file_and_writing_mends_it(tmp_path: Path) -> None:
    generate_schemas = runpy.run_path(str(ROOT / "scripts" / "generate_schemas.py"))

    # Given a committed schema that no longer matches the models
    stale = tmp_path / "booking-email-v1.json"
    stale.write_text('{"title": "an older schema"}\n')
    files = {stale: job_json_schema}
    # Then the check fails without touching it, and a plain run rewrites it
    assert generate_schemas["main"](["--check"], files) == 1
    assert json.loads(stale.read_text()) == {"title": "an older schema"}
    assert generate_schemas["main"]([], files) == 0
    assert json.loads(stale.read_text()) == job_json_schema()
    assert generate_schemas["main"](["--check"], files) == 0


def test_queue_message_errors_never_echo_a_type_or_key_that_is_an_address() -> None:
    # Given a queue message whose email_type, and one of whose keys, is the guest's address
    bad = {**job(), "email_type": GUEST_EMAIL}
    also_bad = {**job(), GUEST_EMAIL: "x"}
    for payload in (bad, also_bad):
        with pytest.raises(ValidationError) as caught:
            EMAIL_JOB.validate_python(payload)
        # Then the contract's error list names the problem without the address
        assert GUEST_EMAIL not in json.dumps(safe_errors(caught.value))
    with pytest.raises(ValidationError) as caught:
        EMAIL_JOB.validate_python({**job(), "unexpected_field": 1, "Ana Pérez": 2})
    # A key spelled like a field name is named (the caller needs to know which); any other key
    # may be a name or an address, and is not
    assert sorted(map(str, (e["loc"][-1] for e in safe_errors(caught.value)))) == [
        "(unknown)",
        "unexpected_field",
    ]
    assert {e["msg"] for e in safe_errors(caught.value)} == {"unexpected field"}
