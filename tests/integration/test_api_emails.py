"""Email routes through the real function against moto, and the consumer honouring them
(docs/reference/http-api.md#emails); errors as docs/reference/http-api.md#problem-documents says, never
echoing what was sent."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from booking_durability.emails.ledger import Change
from booking_durability.emails.models import EmailRef
from booking_durability.times import utc_now
from tests.builders import GUEST_EMAIL, GUEST_NAME, PII, LambdaContext, api_event, email_request, job
from tests.integration.conftest import (
    REGION,
    Answer,
    Api,
    Clock,
    Resources,
    ScriptedProvider,
    ledger,
    make_delivery,
)
from tests.integration.test_email_delivery import message

KEY = "bk_123#booking_confirmed#0"


def problem(answer: Answer, status: int, code: str) -> dict[str, Any]:
    assert answer.status == status, answer.body
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.body["code"] == code
    return dict(answer.body)


def test_post_records_queued_and_publishes_the_job(api: Api, resources: Resources) -> None:
    answer = api.call("POST", "/v1/emails", email_request())
    assert answer.status == 202
    assert answer.body["status"] == "queued"
    assert answer.body["dedupe_key"] == KEY
    [sent] = resources.drain(resources.queue_url)
    body = json.loads(sent["Body"])
    assert body["job_id"] == answer.body["job_id"]
    assert body["deliver_at"] == answer.body["deliver_at"]
    status = api.call("GET", "/v1/emails/bk_123/booking_confirmed", query={"revision": "0"})
    assert status.status == 200
    assert (status.body["status"], status.body["attempts"], status.body["dedupe_key"]) == ("queued", 0, KEY)
    assert GUEST_EMAIL not in json.dumps(status.body)


@pytest.mark.parametrize("final", ["sent", "cancelled", "suppressed", "expired"])
def test_post_never_overwrites_a_finished_email_and_publishes_nothing(
    api: Api, resources: Resources, final: str
) -> None:
    ref = EmailRef("bk_123", "booking_confirmed", 0)
    records = ledger(resources)
    if final == "sent":
        records.mark_sent(ref, utc_now())
    elif final == "cancelled":
        records.cancel(ref, utc_now())
    else:
        # A worker's claim ends in suppressed (suppress_if_sent) or expired (past not_after)
        token = records.claim(ref, "j", utc_now(), utc_now(), 60).record.lease_token
        assert token is not None
        change = Change.SUPPRESS if final == "suppressed" else Change.EXPIRE
        assert records.finish(ref, token, change, utc_now()).done
    answer = api.call("POST", "/v1/emails", email_request())
    assert (answer.status, answer.body["status"]) == (202, final)
    assert resources.drain(resources.queue_url) == []
    assert resources.status("bk_123", "booking_confirmed#0") == final


def test_post_queues_a_failed_email_again(api: Api, resources: Resources) -> None:
    ref = EmailRef("bk_123", "booking_confirmed", 0)
    records = ledger(resources)
    claim = records.claim(ref, "j", utc_now(), utc_now(), 60)
    assert claim.record.lease_token is not None
    records.finish(ref, claim.record.lease_token, Change.FAIL, utc_now(), "provider_rejected")
    answer = api.call("POST", "/v1/emails", email_request())
    assert answer.body["status"] == "queued"
    assert len(resources.drain(resources.queue_url)) == 1


def test_a_job_the_queue_refuses_is_503_and_posting_it_again_publishes_it(
    api: Api, resources: Resources
) -> None:
    # Given the queue refuses the job once the ledger recorded it
    name = resources.queue_url.rsplit("/", 1)[-1]
    resources.sqs.delete_queue(QueueUrl=resources.queue_url)
    problem(api.call("POST", "/v1/emails", email_request()), 503, "QUEUE_SEND_FAILED")
    # Then the email stays queued, neither lost nor finished, and the booking app's retry publishes it
    assert resources.status("bk_123", "booking_confirmed#0") == "queued"
    assert resources.sqs.create_queue(QueueName=name)["QueueUrl"] == resources.queue_url
    answer = api.call("POST", "/v1/emails", email_request())
    assert (answer.status, answer.body["status"]) == (202, "queued")
    assert len(resources.drain(resources.queue_url)) == 1


def test_a_deliveries_table_that_fails_is_503_on_every_email_route(api: Api, resources: Resources) -> None:
    resources.dynamodb.delete_table(TableName=resources.table)
    for method, path, body in (
        ("POST", "/v1/emails", email_request()),
        ("GET", "/v1/emails/bk_123/booking_confirmed", None),
        ("DELETE", "/v1/emails/bk_123/booking_confirmed", None),
        ("DELETE", "/v1/emails/bk_123", None),
    ):
        problem(api.call(method, path, body), 503, "STORE_UNAVAILABLE")
    assert resources.drain(resources.queue_url) == []


def test_delete_of_an_unknown_key_leaves_a_tombstone_the_consumer_honours(
    api: Api, resources: Resources
) -> None:
    # Given the booking app cancels an email before publishing it
    answer = api.call("DELETE", "/v1/emails/bk_123/booking_confirmed")
    assert (answer.status, answer.body) == (200, {"dedupe_key": KEY, "status": "cancelled"})
    # When the job arrives straight through SQS, then it is never delivered
    provider = ScriptedProvider()
    outcome = make_delivery(resources, provider, Clock()).deliver(message(job()))
    assert outcome.value == "cancelled"
    assert provider.sent == []


def test_delete_refuses_a_sent_email_and_one_being_sent(api: Api, resources: Resources) -> None:
    records = ledger(resources)
    records.mark_sent(EmailRef("bk_1", "booking_confirmed", 0), utc_now())
    records.claim(EmailRef("bk_2", "booking_confirmed", 0), "j", utc_now(), utc_now(), 600)
    problem(api.call("DELETE", "/v1/emails/bk_1/booking_confirmed"), 409, "ALREADY_SENT")
    problem(api.call("DELETE", "/v1/emails/bk_2/booking_confirmed"), 409, "SEND_IN_PROGRESS")


def test_delete_of_a_booking_cancels_every_recorded_email_not_sent(api: Api, resources: Resources) -> None:
    records = ledger(resources)
    api.call("POST", "/v1/emails", email_request(email_type="booking_request_received"))
    api.call("POST", "/v1/emails", email_request())
    records.mark_sent(EmailRef("bk_123", "booking_updated", 1), utc_now())
    answer = api.call("DELETE", "/v1/emails/bk_123")
    assert answer.body == {"cancelled": ["bk_123#booking_confirmed#0", "bk_123#booking_request_received#0"]}
    sent = api.call("GET", "/v1/emails/bk_123/booking_updated", query={"revision": "1"})
    assert sent.body["status"] == "sent"


def test_an_unknown_email_is_404(api: Api) -> None:
    problem(api.call("GET", "/v1/emails/bk_none/booking_confirmed"), 404, "NOT_FOUND")


@pytest.mark.parametrize(
    ("event", "status", "code"),
    [
        ({"raw_body": '{"booking_id": '}, 400, "INVALID_JSON"),
        ({"raw_body": "[" * 100_000 + "]" * 100_000}, 413, "PAYLOAD_TOO_LARGE"),
        ({"raw_body": "[" * 20_000 + "]" * 20_000}, 400, "INVALID_JSON"),
        ({"raw_body": "\ufeff" + json.dumps(email_request())}, 400, "INVALID_JSON"),
        ({"raw_body": json.dumps(email_request(revision=10**40))}, 422, "VALIDATION_FAILED"),
        ({"raw_body": "x" * (64 * 1024 + 1)}, 413, "PAYLOAD_TOO_LARGE"),
        (
            {"raw_body": "a=b", "headers": {"Content-Type": "application/x-www-form-urlencoded"}},
            415,
            "UNSUPPORTED_MEDIA_TYPE",
        ),
        *(
            (
                {"raw_body": json.dumps(email_request()), "headers": {"Content-Type": media}},
                415,
                "UNSUPPORTED_MEDIA_TYPE",
            )
            for media in ("application/vnd.api+json", "application/json-seq")
        ),
    ],
)
def test_bad_input_gets_a_clear_problem_and_never_a_5xx(
    api: Api, resources: Resources, event: dict[str, Any], status: int, code: str
) -> None:
    answer = api.call("POST", "/v1/emails", None, **event)
    problem(answer, status, code)
    assert resources.drain(resources.queue_url) == []


@pytest.mark.parametrize("media", ["Application/JSON", "application/JSON; charset=UTF-8"])
def test_json_in_any_letter_case_is_json(api: Api, resources: Resources, media: str) -> None:
    # Media types are case-insensitive: the email is recorded and published
    answer = api.call(
        "POST", "/v1/emails", None, raw_body=json.dumps(email_request()), headers={"Content-Type": media}
    )
    assert answer.status == 202, answer.body
    assert len(resources.drain(resources.queue_url)) == 1


def test_problem_titles_read_the_same_on_every_python(api: Api) -> None:
    # Python before 3.13 names 413 "Request Entity Too Large"; the answer keeps RFC 9110's name
    answer = problem(
        api.call("POST", "/v1/emails", None, raw_body="x" * (64 * 1024 + 1)), 413, "PAYLOAD_TOO_LARGE"
    )
    assert answer["title"] == "Content Too Large"
    document = api.call("GET", "/v1/openapi.json").body
    described = {
        status: answer["description"]
        for operation in document["paths"]["/v1/emails"].values()
        for status, answer in operation["responses"].items()
    }
    assert described["413"].split(":")[0] == "Content Too Large"
    assert described["422"].split(":")[0] == "Unprocessable Content"


def test_a_body_in_another_encoding_than_utf8_is_not_json(api: Api, resources: Resources) -> None:
    # Given a body API Gateway passes on as base64 (a binary media type), written in UTF-16
    event = api_event(
        "POST", "/v1/emails", raw_body=base64.b64encode(json.dumps(email_request()).encode("utf-16")).decode()
    )
    event["isBase64Encoded"] = True
    context = LambdaContext(
        function_name="email_api", invoked_function_arn=f"arn:aws:lambda:{REGION}:1:function:x"
    )
    response = api.handlers["email_api"](event, context)
    # Then it is refused as not JSON, not failed on
    assert response["statusCode"] == 400
    assert json.loads(response["body"])["code"] == "INVALID_JSON"
    assert resources.drain(resources.queue_url) == []


def test_validation_errors_never_echo_the_guest(api: Api) -> None:
    body = email_request(time_zone="Nowhere/Else")
    body["recipient"] = {"email": f"not-an-address-{GUEST_NAME}", "name": GUEST_NAME}
    body[GUEST_EMAIL] = "unexpected key"
    answer = problem(api.call("POST", "/v1/emails", body), 422, "VALIDATION_FAILED")
    # The one title of VALIDATION_FAILED, whatever Python's name for 422 (3.13 renamed it)
    assert answer["title"] == "Request validation failed"
    # (unescaped: json.dumps would write "é" as "\u00e9", and the name could never match)
    text = json.dumps(answer, ensure_ascii=False)
    for planted in (*PII, "Pérez"):
        assert planted not in text, planted
    assert answer["errors"]


def test_unknown_routes_and_methods_are_problems_not_errors(api: Api) -> None:
    problem(api.call("GET", "/v1/nothing-here"), 404, "NOT_FOUND")
    problem(api.call("PATCH", "/v1/holds/h1"), 404, "NOT_FOUND")


def test_no_guest_data_reaches_logs_output_records_attributes_or_answers(
    api: Api, resources: Resources, log_lines: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given requests carrying the guest's address and name down every path of the email routes
    good = email_request()
    bad = {**email_request(time_zone="Nowhere/Else"), GUEST_NAME: GUEST_EMAIL}
    answers = [
        api.call("POST", "/v1/emails", good),
        api.call("POST", "/v1/emails", good),
        api.call("POST", "/v1/emails", bad),
        api.call("POST", "/v1/emails", None, raw_body=json.dumps(good)[:-3]),
        api.call("GET", "/v1/emails/bk_123/booking_confirmed"),
        api.call("DELETE", "/v1/emails/bk_123"),
    ]
    published = resources.drain(resources.queue_url)
    assert len(published) == 2
    # And down the one path that logs: the queue refuses the job after the ledger recorded it
    resources.sqs.delete_queue(QueueUrl=resources.queue_url)
    answers.append(api.call("POST", "/v1/emails", email_request(booking_id="bk_456")))
    assert answers[-1].status == 503
    logged = log_lines.getvalue()
    assert "dependency unavailable" in logged
    # Then no answer, log line, output (where EMF goes; these routes count nothing), deliveries
    # record or message attribute carries them (read unescaped: json.dumps writes "é" as "\u00e9")
    attributes = [(m["MessageAttributes"], m["Attributes"]) for m in published]
    assert all(m["email_type"]["StringValue"] == "booking_confirmed" for m, _ in attributes)
    surfaces = [
        json.dumps([a.body for a in answers], ensure_ascii=False),
        logged,
        capsys.readouterr().out,
        json.dumps(resources.items(), ensure_ascii=False),
        json.dumps(attributes, ensure_ascii=False),
    ]
    for planted in (*PII, "Pérez"):
        assert not [surface for surface in surfaces if planted in surface], planted
