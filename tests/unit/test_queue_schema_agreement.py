"""The committed queue schema (``schemas/booking-email-v1.json``) says what the consumer takes.

The booking app checks each message with Ajv (JSON Schema 2020-12, strict mode, ajv-formats)
before it publishes: a message Ajv passes and the consumer refuses is dead-lettered as
``schema_invalid`` and pages the on-call; one Ajv refuses and the consumer would take is a booking
the app cannot send. So, for every message generated here, Ajv's verdict and the consumer's are
the same. The messages come from the schema (Schemathesis' JSON Schema generator, valid and
invalid), and from the consumer's own model: valid messages of every email type, and near misses
(one value changed to an edge of a rule, a field dropped, one added).

The consumer's verdict is its real entry point, ``EmailDelivery.deliver``, with a clock before any
instant it accepts: a message it takes waits for its ``deliver_at`` (a re-queue, touching nothing
else); one it refuses is dead-lettered ``schema_invalid``.

(hypothesis-jsonschema, the usual generator from a schema, fails on every object schema with the
pinned Hypothesis: ``'many' object has no attribute 'more'``. Schemathesis' generator reads the
same document, ECMA-262 patterns included, and is the one the API fuzzer already uses.)
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.generation import GenerationMode

from booking_durability.emails.delivery import EmailDelivery, EmailOutcome, IncomingMessage
from booking_durability.emails.dispatch import Dispatch
from booking_durability.emails.models import EmailType
from booking_durability.observability import metrics
from booking_durability.times import INSTANT_PATTERN, iana_zones
from booking_durability.validation import ID_CHARACTERS, ID_MAX_LENGTH
from tests.ajv import SchemaNotLoaded, ajv
from tests.builders import GUEST_NAME, job
from tests.unit.notifications.builders import FakeQueue

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "schemas" / "booking-email-v1.json"
#: Before every instant a message may carry (2000 and later): whatever validates is deferred.
BEFORE_ANY_INSTANT = datetime(1999, 1, 1, tzinfo=UTC)
AGREEMENT = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))


class _Untouched:
    """A dependency a message that is only parsed and deferred must never reach."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the consumer reached {name} for a message it should only parse")


class _RetainingOnly(_Untouched):
    """The ledger as a deferral meets it: the key's record kept until the copy's ``deliver_at``,
    nothing else."""

    def __init__(self) -> None:
        self.retained: list[Any] = []

    def retain(self, *args: Any) -> None:
        self.retained.append(args)


def consumer_takes(message: Any) -> bool:
    """True when the consumer accepts ``message`` as a job; False when it dead-letters it as
    ``schema_invalid``."""
    queue, dlq, ledger = FakeQueue(), FakeQueue(), _RetainingOnly()
    delivery = EmailDelivery(
        ledger=ledger,  # type: ignore[arg-type]
        dispatch=Dispatch(queue, dlq, max_hop_seconds=900),
        sending=_Untouched(),  # type: ignore[arg-type]
        lease_seconds=60,
        clock=lambda: BEFORE_ANY_INSTANT,
    )
    body = json.dumps(message)  # lone surrogates as \ud800 escapes, as a JavaScript producer writes them
    outcome = delivery.deliver(IncomingMessage("m-1", "rh-1", body, receive_count=1))
    metrics.clear_metrics()
    if outcome is EmailOutcome.DEFERRED:
        assert [len(queue.sent), len(dlq.sent), len(ledger.retained)] == [1, 0, 1]
        return True
    assert outcome is EmailOutcome.DEAD_LETTERED, outcome
    [letter] = dlq.sent
    assert letter.attributes["failure_reason"] == "schema_invalid"
    return False


def assert_agree(message: Any) -> None:
    verdict = ajv().validate(SCHEMA, message)
    taken = consumer_takes(message)
    assert verdict.valid == taken, (
        f"Ajv {'passes' if verdict.valid else 'refuses'} it {verdict.errors}, "
        f"the consumer {'takes' if taken else 'dead-letters'} it"
    )


# -- Ajv loads the schema as the booking app does -----------------------------------------------------


def test_ajv_2020_in_strict_mode_loads_the_committed_schema_as_it_is() -> None:
    # Given the committed schema, with its dialect named
    schema = json.loads(SCHEMA.read_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    # When Ajv 2020 loads it in strict mode, with ajv-formats and no keyword of ours
    # Then it compiles, and passes a valid message
    assert ajv().validate(SCHEMA, job()).valid


def test_the_schema_carries_no_openapi_keyword() -> None:
    text = SCHEMA.read_text()
    assert '"discriminator"' not in text
    assert '"nullable"' not in text


def test_ajv_refuses_to_load_a_schema_with_an_unknown_keyword(tmp_path: Path) -> None:
    # The check above is only worth something if strict mode does refuse
    schema = {**json.loads(SCHEMA.read_text()), "discriminator": {"propertyName": "email_type"}}
    (tmp_path / "schema.json").write_text(json.dumps(schema))
    with pytest.raises(SchemaNotLoaded, match="discriminator"):
        ajv().validate(tmp_path / "schema.json", job())


# -- the per-type rule ---------------------------------------------------------------------------------


@pytest.mark.parametrize("previous", ["absent", None, 7])
def test_a_booking_updated_job_without_previous_starts_at_is_refused_by_both(previous: Any) -> None:
    message = job(email_type="booking_updated")
    if previous != "absent":
        message["data"]["previous_starts_at"] = previous
    assert not ajv().validate(SCHEMA, message).valid
    assert not consumer_takes(message)


def test_a_booking_updated_job_with_previous_starts_at_is_taken_by_both() -> None:
    message = job(email_type="booking_updated")
    message["data"]["previous_starts_at"] = "2026-12-20T20:30:00+01:00"
    assert ajv().validate(SCHEMA, message).valid
    assert consumer_takes(message)


# -- messages from the schema -----------------------------------------------------------------------------


def _schema_as_openapi() -> dict[str, Any]:
    """The committed schema as one operation's request body, which Schemathesis generates from."""
    schema = json.loads(SCHEMA.read_text())
    definitions = schema.pop("$defs")
    for key in ("$schema", "$id"):
        schema.pop(key)

    def in_components(part: Any) -> Any:
        return json.loads(json.dumps(part).replace('"#/$defs/', '"#/components/schemas/'))

    return {
        "openapi": "3.1.0",
        "info": {"title": "booking-email/v1", "version": "1"},
        "paths": {
            "/jobs": {
                "post": {
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": in_components(schema)}},
                    },
                    "responses": {"200": {"description": "OK"}},
                }
            }
        },
        "components": {"schemas": in_components(definitions)},
    }


def _is_json(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):  # bytes, NaN: no JSON a producer can write
        return False
    return True


def _from_schema(mode: GenerationMode) -> st.SearchStrategy[Any]:
    operation = schemathesis.openapi.from_dict(_schema_as_openapi())["/jobs"]["POST"]
    return operation.as_strategy(generation_mode=mode).map(lambda case: case.body).filter(_is_json)


# The generator treats some patterns as hints (the lookahead-only ones of free text among them), so
# a "valid" message may break one: the property is that both sides read each one alike.
@AGREEMENT
@given(message=_from_schema(GenerationMode.POSITIVE))
def test_ajv_and_the_consumer_agree_on_the_messages_the_schema_describes(message: Any) -> None:
    assert_agree(message)


@AGREEMENT
@given(message=_from_schema(GenerationMode.NEGATIVE))
def test_a_message_the_schema_refuses_the_consumer_refuses(message: Any) -> None:
    assert_agree(message)


# -- messages from the model ------------------------------------------------------------------------------

instants = st.from_regex(INSTANT_PATTERN, fullmatch=True)
texts = st.text(min_size=1, max_size=30).filter(str.isprintable)
addresses = st.builds(
    "{}@{}.test".format,
    st.from_regex(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,20}", fullmatch=True),
    st.from_regex(r"[a-z0-9]{1,20}", fullmatch=True),
)


@st.composite
def valid_messages(draw: st.DrawFn) -> dict[str, Any]:
    """A message of any email type, with the optional fields present or not."""
    email_type = draw(st.sampled_from(list(EmailType)))
    message = job(email=draw(addresses), email_type=email_type.value)
    message.update(
        booking_id=draw(st.from_regex(f"{ID_CHARACTERS}{{1,{ID_MAX_LENGTH}}}", fullmatch=True)),
        revision=draw(st.integers(0, 2**31 - 1)),
        deliver_at=draw(instants),
        locale=draw(st.sampled_from(["en", "es", "es-MX", "pt-BR", "zh-Hant-TW"])),
        time_zone=draw(st.sampled_from(iana_zones())),
        job_id=str(uuid.UUID(int=draw(st.integers(0, 2**128 - 1)))),
    )
    for name, value in (
        ("not_after", instants),
        ("suppress_if_sent", st.lists(st.sampled_from([t.value for t in EmailType]), max_size=3)),
        ("delay_seconds", st.integers(0, 315_360_000)),
    ):
        if draw(st.booleans()):
            message[name] = draw(value)
    if email_type is EmailType.ADMIN_POLICY_DRIFT:
        message["data"] = draw(drift_data())
        return message
    data = message["data"]
    data.update(
        restaurant_name=draw(texts), reference=draw(texts), party_size=draw(st.integers(1, 100)),
        starts_at=draw(instants),
    )  # fmt: skip
    if email_type is EmailType.BOOKING_UPDATED or draw(st.booleans()):
        data["previous_starts_at"] = draw(instants)
    if draw(st.booleans()):
        data["cancellation_reason"] = draw(texts)
    if draw(st.booleans()):
        message["recipient"] = {"email": message["recipient"]["email"]}
    return message


@st.composite
def drift_data(draw: st.DrawFn) -> dict[str, Any]:
    recovered = draw(st.booleans())
    data: dict[str, Any] = {
        "type": "policy_drift.recovered" if recovered else "policy_drift.unrecovered",
        "event_id": str(uuid.uuid4()),
        "occurred_at": draw(instants),
        "venue_id": "casa",
        "original_hold_id": "hld_1",
        "original_policy_hash": "a" * 64,
        "policy_hash": "b" * 64,
        "policy_version": draw(st.integers(1, 1000)),
        "attempts": draw(st.integers(0, 2)),
    }
    if recovered or draw(st.booleans()):
        data["hold_id"] = "hld_2"
    if not recovered:
        data["reason"] = draw(st.sampled_from(["no_availability", "drift_repeated", "interrupted"]))
    return data


FINITE = st.floats(allow_nan=False, allow_infinity=False)

#: Values at the edges of the rules the message's fields follow, each tried in every field.
EDGES: list[Any] = [
    # instants: the written range, offsets, forms another parser would also read
    "1999-12-31T23:59:59Z", "2100-01-01T00:00:00Z", "2026-12-24T20:30:00+14:01",
    "2026-12-24T20:30:00-15:00", "2026-12-24T20:30:00", "2026-12-24 20:30:00Z",
    "2026-12-24t20:30:00z", "2026-12-31T23:59:60Z", "2027-02-29T00:00:00Z", "2028-02-29T00:00:00Z",
    "2026-12-24T20:30:00.1234567890Z", "2026-12-24T24:00:00Z", "2026-12-24T20:30:00Z\n",
    "2026-12-24T20:30Z", "+02026-12-24T20:30:00Z", "2026-W52-4T20:30:00Z",
    # free text: control characters, separators, surrogates, lengths
    "", " ", "a\nb", "a\tb", "a\rb", "\x7f", "\x85", "\u2028", "\ud800", "x\udfffy", "😀",
    "é" * 64, "é" * 65, "x" * 200, "x" * 201, GUEST_NAME,
    # addresses: the local part, the domain, the lengths, special-use names
    "ana@example.test", "ANA@EXAMPLE.TEST", "zoë@example.test", "ana@bücher.example",
    "ana@xn--bcher-kva.example", '"a b"@example.test', "a..b@example.test", ".a@example.test",
    "a@example", "a@example.123", "a@-example.test", "a@example-.test", "a@example.test.",
    "a@example.invalid", "a@mail.LOCAL", "a@b.onion", "a@b.localhost", "a@10.in-addr.arpa",
    "a" * 64 + "@example.test", "a" * 65 + "@example.test", "a@" + "b" * 63 + ".test",
    "a@" + "b" * 64 + ".test", "a@" + ".".join(["b" * 60] * 4) + ".test", "a@b.c", "a@b.c1",
    "a@ab--c.test", "a@b.hC--x.test", "a@ab--c", "ab--c@b.test", "a@XN--bcher-kva.example",
    # UUIDs: the spellings Python reads besides the canonical one
    "6f1b1c8e-2b0a-4c5e-9b7a-0e8f7a6b5c4d", "6F1B1C8E-2B0A-4C5E-9B7A-0E8F7A6B5C4D",
    "6f1b1c8e2b0a4c5e9b7a0e8f7a6b5c4d", "{6f1b1c8e-2b0a-4c5e-9b7a-0e8f7a6b5c4d}",
    "urn:uuid:6f1b1c8e-2b0a-4c5e-9b7a-0e8f7a6b5c4d", "00000000-0000-0000-0000-000000000000",
    # ids, names and enums
    "bk_1", "bk 1", "bk_1\n", "x" * 128, "x" * 129, "en", "es-MX", "e", "es\n", "en-abcdefghi",
    "UTC", "Europe/Madrid", "europe/madrid", "localtime", "booking_updated", "admin_policy_drift",
    "canary", "booking-email/v1", "booking-email/v2", "policy_drift.recovered", "interrupted",
    "a" * 64, "A" * 64, "g" * 64,
    # numbers: JSON integers and what is not one
    0, 1, -1, 2, 2.0, 2.5, 100, 100.0, 101, 1e2, 2**31 - 1, 2**31, 315_360_000, 315_360_001,
    1e300, True, False, "2",
    # other JSON
    None, [], ["booking_confirmed"], ["nope"], {}, {"email": "ana@example.test"},
]  # fmt: skip


def _paths(value: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for name, inner in value.items():
            found += _paths(inner, (*prefix, name))
    return found


def _set(message: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for name in path[:-1]:
        message = message[name]
    message[path[-1]] = value


def _drop(message: dict[str, Any], path: tuple[str, ...]) -> None:
    for name in path[:-1]:
        message = message[name]
    del message[path[-1]]


@st.composite
def near_misses(draw: st.DrawFn) -> dict[str, Any]:
    """A valid message with one or two changes: a value replaced by an edge of some rule (or by
    any text or number), a field dropped, or one added."""
    message = draw(valid_messages())
    for _ in range(draw(st.integers(1, 2))):
        path = draw(st.sampled_from(_paths(message)))
        change = draw(st.sampled_from(["replace", "replace", "replace", "drop", "add"]))
        if change == "replace":
            value = draw(st.one_of(st.sampled_from(EDGES), st.text(max_size=20), st.integers(), FINITE))
            _set(message, path, value)
        elif change == "drop":
            _drop(message, path)
        else:
            _set(message, (*path[:-1], draw(st.sampled_from(["schema_id", "email", "extra", "type"]))), "x")
    return message


@AGREEMENT
@given(message=valid_messages())
def test_every_valid_message_of_the_model_passes_ajv(message: dict[str, Any]) -> None:
    assert consumer_takes(message)
    assert ajv().validate(SCHEMA, message).valid


@settings(AGREEMENT, max_examples=1500)
@given(message=near_misses())
def test_ajv_and_the_consumer_agree_on_every_near_miss(message: dict[str, Any]) -> None:
    assert_agree(message)


@pytest.mark.parametrize(
    "path",
    [
        ("deliver_at",),
        ("not_after",),
        ("data", "starts_at"),
        ("recipient", "email"),
        ("recipient", "name"),
        ("data", "restaurant_name"),
        ("job_id",),
        ("booking_id",),
        ("locale",),
        ("time_zone",),
        ("revision",),
        ("data", "party_size"),
        ("delay_seconds",),
        ("suppress_if_sent",),
    ],
    ids=".".join,
)
def test_ajv_and_the_consumer_agree_on_every_edge_in_every_field(path: tuple[str, ...]) -> None:
    differing = []
    for edge in EDGES:
        message = job()
        _set(message, path, edge)
        verdict, taken = ajv().validate(SCHEMA, message), consumer_takes(message)
        if verdict.valid != taken:
            differing.append((edge, "Ajv passes it" if verdict.valid else f"Ajv refuses it {verdict.errors}"))
    assert differing == []
