"""The committed schemas of what the booking app receives and produces besides queue messages:
the drift webhook's body (``schemas/policy-drift-webhook-v1.json``) and a line of its hold export
(``schemas/hold-import-line-v1.json``). Each is generated from the model that reads it, and says
what that reader takes, as Ajv 2020 (strict mode, ajv-formats) reads it:

- a body the schema passes is one the notifier delivers; one it refuses is one the notifier
  dead-letters as ``invalid_event``;
- a line the schema passes is one the importer parses (unless its ``ends_at`` is not after its
  ``starts_at``, the one rule of a line alone that JSON Schema cannot state); a line the importer
  refuses for its structure (not an object, a field missing, unknown, mistyped, a status other than
  ``held``) the schema refuses too. Refusals that depend on the store (venue, tables, seating,
  expiry, ids taken) are the import's own.

The bodies the notifier actually posts, for each way a drift flow ends, are checked against the
committed schema in tests/integration/test_drift_webhook_bodies.py.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from booking_durability.drift_events import PolicyDriftData, drift_event_json_schema
from booking_durability.notifications.delivery import IncomingNotification, NotificationOutcome, Notifier
from booking_durability.notifications.failure_policy import NotificationFailurePolicy
from booking_durability.reservations.holds import Hold
from booking_durability.times import INSTANT_PATTERN
from booking_durability.validation import ID_CHARACTERS
from operations.migration import (
    Refusal,
    Refused,
    import_line_json_schema,
    parse_line,
)
from tests.ajv import ajv
from tests.unit.notifications.builders import FakeQueue, drift_event, unrecovered_event
from tests.unit.test_queue_schema_agreement import EDGES, FINITE, _drop, _paths, _set, drift_data

ROOT = Path(__file__).resolve().parents[2]
WEBHOOK_SCHEMA = ROOT / "schemas" / "policy-drift-webhook-v1.json"
IMPORT_SCHEMA = ROOT / "schemas" / "hold-import-line-v1.json"
AGREEMENT = settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
#: Refusals a schema of the line alone states; the others depend on the store, or on two fields.
STRUCTURAL = {
    Refusal.NOT_AN_OBJECT,
    Refusal.MISSING_FIELD,
    Refusal.UNKNOWN_FIELD,
    Refusal.INVALID_FIELD,
    Refusal.STATUS_NOT_HELD,
}


@pytest.mark.parametrize(
    ("path", "build"),
    [(WEBHOOK_SCHEMA, drift_event_json_schema), (IMPORT_SCHEMA, import_line_json_schema)],
    ids=["webhook", "import-line"],
)
def test_the_committed_schema_is_the_one_the_model_generates_and_ajv_strict_loads_it(
    path: Path, build: Any
) -> None:
    committed = json.loads(path.read_text())
    assert committed == build(), "run: make schemas"
    assert committed["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert '"discriminator"' not in path.read_text()
    assert "\N{SECTION SIGN}" not in path.read_text()  # the schema cites no outside section
    example = drift_event() if path == WEBHOOK_SCHEMA else line()
    assert ajv().validate(path, example).valid


# -- the drift webhook's body -----------------------------------------------------------------------


class _Recording:
    name: Literal["webhook"] = "webhook"

    def __init__(self) -> None:
        self.delivered: list[str] = []

    def deliver(self, event: PolicyDriftData, body: str) -> None:
        self.delivered.append(body)


def notifier_delivers(event: Any) -> bool:
    """True when the notifier hands the body to its channel; False when it dead-letters it as
    ``invalid_event`` (the only other thing it may do with a body it reads alone)."""
    channel, dlq = _Recording(), FakeQueue()
    notifier = Notifier(channel=channel, dlq=dlq, policy=NotificationFailurePolicy(max_receives=5))
    body = json.dumps(event)
    outcome = notifier.notify(IncomingNotification("m-1", body, receive_count=1))
    if outcome is NotificationOutcome.SENT:
        assert channel.delivered == [body]
        return True
    [letter] = dlq.sent
    assert letter.attributes["failure_reason"] == "invalid_event"
    return False


def assert_webhook_agrees(event: Any) -> None:
    verdict = ajv().validate(WEBHOOK_SCHEMA, event)
    delivered = notifier_delivers(event)
    assert verdict.valid == delivered, (
        f"Ajv {'passes' if verdict.valid else 'refuses'} it {verdict.errors}, "
        f"the notifier {'delivers' if delivered else 'dead-letters'} it"
    )


@pytest.mark.parametrize(
    "event",
    [
        drift_event(),
        unrecovered_event(),
        drift_event(type="policy_drift.unrecovered", reason="drift_repeated"),
        drift_event(type="policy_drift.unrecovered", reason="interrupted"),
    ],
    ids=["recovered", "no_availability", "drift_repeated", "interrupted"],
)
def test_every_kind_of_event_passes_the_schema_and_the_notifier(event: dict[str, Any]) -> None:
    assert ajv().validate(WEBHOOK_SCHEMA, event).valid
    assert notifier_delivers(event)


@st.composite
def near_miss_events(draw: st.DrawFn) -> dict[str, Any]:
    """A valid body with one or two changes: a value at the edge of a rule, a field dropped or added."""
    event = draw(drift_data())
    for _ in range(draw(st.integers(1, 2))):
        path = draw(st.sampled_from(_paths(event)))
        change = draw(st.sampled_from(["replace", "replace", "replace", "drop", "add"]))
        if change == "replace":
            value = draw(st.one_of(st.sampled_from(EDGES), st.text(max_size=20), st.integers(), FINITE))
            _set(event, path, value)
        elif change == "drop":
            _drop(event, path)
        else:
            _set(event, (draw(st.sampled_from(["extra", "data", "email", "booking_id"])),), "x")
    return event


@AGREEMENT
@given(event=drift_data())
def test_every_body_of_the_model_passes_the_schema(event: dict[str, Any]) -> None:
    assert_webhook_agrees(event)
    assert notifier_delivers(event)


@AGREEMENT
@given(event=near_miss_events())
def test_the_schema_and_the_notifier_agree_on_every_near_miss(event: dict[str, Any]) -> None:
    assert_webhook_agrees(event)


@pytest.mark.parametrize("name", sorted(drift_event()), ids=str)
def test_the_schema_and_the_notifier_agree_on_every_edge_in_every_field(name: str) -> None:
    differing = []
    for edge in EDGES:
        event = {**drift_event(), name: edge}
        verdict, delivered = ajv().validate(WEBHOOK_SCHEMA, event), notifier_delivers(event)
        if verdict.valid != delivered:
            differing.append((edge, "Ajv passes it" if verdict.valid else f"Ajv refuses it {verdict.errors}"))
    assert differing == []


# -- a line of the hold export ---------------------------------------------------------------------


def line(**overrides: Any) -> dict[str, Any]:
    """An export line with every field, a full snapshot included; None removes a field."""
    body: dict[str, Any] = {
        "hold_id": "hld_1",
        "venue_id": "casa",
        "status": "held",
        "party_size": 4,
        "starts_at": "2026-12-24T20:30:00+01:00",
        "ends_at": "2026-12-24T22:00:00+01:00",
        "expires_at": "2026-12-24T12:10:00Z",
        "table_ids": ["T2"],
        "policy_hash": "a" * 64,
        "policy_version": 3,
        "selection_snapshot": {
            "party_size": 4,
            "starts_at": "2026-12-24T20:30:00+01:00",
            "ends_at": "2026-12-24T22:00:00+01:00",
            "zone": "terrace",
            "quoted_at": "2026-12-24T12:00:00Z",
            "tables": [{"id": "T2", "capacity": 4}],
        },
    }
    body.update(overrides)
    return {name: value for name, value in body.items() if value is not None}


def _ends_after_start(document: Any) -> bool:
    # Upper case: the pattern lets "t" and "z" stand for "T" and "Z", as RFC 3339 does
    starts, ends = (datetime.fromisoformat(document[name].upper()) for name in ("starts_at", "ends_at"))
    return ends > starts


def import_disagreement(document: Any) -> str | None:
    """How Ajv's verdict and the importer's differ on ``document``, or None when they agree."""
    verdict = ajv().validate(IMPORT_SCHEMA, document)
    parsed = parse_line(json.dumps(document))
    if isinstance(parsed, Hold):
        return None if verdict.valid else f"the importer takes it, Ajv refuses it {verdict.errors}"
    assert isinstance(parsed, Refused)
    if not verdict.valid:
        return None if parsed.reason in STRUCTURAL else f"Ajv refuses it, the importer says {parsed.reason}"
    # The schema passes it: only the rule across two fields may refuse it
    if (parsed.reason, parsed.field) == (Refusal.INVALID_FIELD, None) and not _ends_after_start(document):
        return None
    return f"Ajv passes it, the importer refuses it {parsed}"


instants = st.from_regex(INSTANT_PATTERN, fullmatch=True)
ids = st.from_regex(f"{ID_CHARACTERS}{{1,64}}", fullmatch=True)


@st.composite
def valid_lines(draw: st.DrawFn) -> dict[str, Any]:
    """A line the importer parses: the required fields, and any of the optional ones."""
    starts = draw(instants)
    document: dict[str, Any] = {
        "hold_id": draw(ids),
        "venue_id": draw(ids),
        "party_size": draw(st.integers(1, 1000)),
        "starts_at": starts,
        "ends_at": draw(instants),
        "expires_at": draw(instants),
        "table_ids": draw(st.lists(ids, max_size=5)),
    }
    if not _ends_after_start(document):
        document["starts_at"], document["ends_at"] = "2026-12-24T20:30:00Z", "2026-12-24T22:00:00Z"
    optional = {
        "status": st.just("held"),
        "policy_hash": st.from_regex(r"[0-9a-f]{64}", fullmatch=True) | st.none(),
        "policy_version": st.integers(1, 2**31) | st.none(),
        "selection_snapshot": snapshots() | st.none(),
    }
    for name, values in optional.items():
        if draw(st.booleans()):
            document[name] = draw(values)
    return document


@st.composite
def snapshots(draw: st.DrawFn) -> dict[str, Any]:
    fields = {
        "party_size": st.integers(1, 1000) | st.none(),
        "starts_at": instants | st.none(),
        "ends_at": instants | st.none(),
        "zone": st.text(min_size=1, max_size=64).filter(str.isprintable) | st.none(),
        "quoted_at": instants | st.none(),
        "tables": st.lists(st.fixed_dictionaries({"id": ids, "capacity": st.integers(1, 1000)}), max_size=3)
        | st.none(),
    }
    return {name: draw(values) for name, values in fields.items() if draw(st.booleans())}


@st.composite
def near_miss_lines(draw: st.DrawFn) -> dict[str, Any]:
    """A valid line with one or two changes: a value at the edge of a rule, a field dropped or added."""
    document = draw(valid_lines())
    for _ in range(draw(st.integers(1, 2))):
        path = draw(st.sampled_from(_paths(document)))
        change = draw(st.sampled_from(["replace", "replace", "replace", "drop", "add"]))
        if change == "replace":
            value = draw(st.one_of(st.sampled_from(EDGES + LINE_EDGES), st.text(max_size=20), st.integers()))
            _set(document, path, value)
        elif change == "drop":
            _drop(document, path)
        else:
            _set(document, (*path[:-1], draw(st.sampled_from(["guest", "email", "id", "zone"]))), "x")
    return document


#: Values at the edges of the line's own rules, besides the message's.
LINE_EDGES: list[Any] = [
    "held", "confirmed", "released", "expired", "superseded", "HELD", 1000, 1001, 2**31, 2**31 + 1,
    ["T1"], ["T 1"], [""], ["x" * 64], ["x" * 65], [1], ["T1"] * 201, "a" * 63,
    [{"id": "T1", "capacity": 2}], [{"id": "T1"}], [{"id": "T1", "capacity": 0}],
    [{"id": "T1", "capacity": 2, "zone": "x"}],
]  # fmt: skip


@AGREEMENT
@given(document=valid_lines())
def test_every_line_the_model_describes_passes_the_schema_and_the_importer(document: dict[str, Any]) -> None:
    assert isinstance(parse_line(json.dumps(document)), Hold)
    assert ajv().validate(IMPORT_SCHEMA, document).valid


@settings(AGREEMENT, max_examples=1000)
@given(document=near_miss_lines())
def test_the_schema_refuses_every_line_the_importer_refuses_for_its_structure(
    document: dict[str, Any],
) -> None:
    assert import_disagreement(document) is None


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        ([line()], Refusal.NOT_AN_OBJECT),
        ("hld_1", Refusal.NOT_AN_OBJECT),
        (line(expires_at=None), Refusal.MISSING_FIELD),
        (line(table_ids=None), Refusal.MISSING_FIELD),
        (line(guest={"name": "x"}), Refusal.UNKNOWN_FIELD),
        (line(selection_snapshot={"guest": "x"}), Refusal.UNKNOWN_FIELD),
        (line(party_size="4"), Refusal.INVALID_FIELD),
        (line(party_size=0), Refusal.INVALID_FIELD),
        (line(table_ids="T2"), Refusal.INVALID_FIELD),
        (line(starts_at="2026-12-24T20:30:00"), Refusal.INVALID_FIELD),
        (line(policy_hash="A" * 64), Refusal.INVALID_FIELD),
        (line(status="confirmed"), Refusal.STATUS_NOT_HELD),
        (line(status=None) | {"status": None}, Refusal.STATUS_NOT_HELD),
    ],
)
def test_a_structural_refusal_is_the_schemas_too(document: Any, reason: Refusal) -> None:
    parsed = parse_line(json.dumps(document))
    assert isinstance(parsed, Refused)
    assert parsed.reason is reason
    assert not ajv().validate(IMPORT_SCHEMA, document).valid


def test_ends_at_not_after_starts_at_is_the_importers_refusal_alone() -> None:
    document = line(ends_at="2026-12-24T20:30:00+01:00")
    assert ajv().validate(IMPORT_SCHEMA, document).valid
    assert parse_line(json.dumps(document)) == Refused(Refusal.INVALID_FIELD, None, "hld_1")


@pytest.mark.parametrize("name", sorted(line()), ids=str)
def test_the_schema_and_the_importer_agree_on_every_edge_in_every_field(name: str) -> None:
    differing = []
    for edge in EDGES + LINE_EDGES:
        problem = import_disagreement(line(**{name: edge}))
        if problem is not None:
            differing.append((edge, problem))
    assert differing == []
