"""The DLQ tool's logic without SQS: what a letter shows, selection, grouping by age, pacing, and
one pass over an in-memory DLQ (hiding, releasing, stopping, leaving what arrived during the
pass) with a fake clock and no sleeps."""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import pytest

from booking_durability.emails.ports import OutgoingMessage
from booking_durability.errors import InfrastructureError, QueueSendFailed
from operations.dead_letter_queues import contract_attributes
from operations.dead_letters import (
    ABSENT,
    CLOCK_SKEW,
    NO_REASON,
    UNKNOWN_TYPE,
    UNRECOGNIZED,
    DeadLetter,
    QueueKind,
    failure_reason_of,
    first_dead_lettered_at_of,
    is_dedupe_key,
    key_of,
    message_type_of,
    needs_force,
    redriven_attributes,
)
from operations.redrive import Discard, RateLimiter, Redrive
from operations.selection import (
    AgeBucket,
    Selection,
    age_bucket,
    describe_duration,
    group,
    parse_duration,
)
from operations.sweep import sweep
from tests.builders import GUEST_EMAIL, GUEST_NAME, T0

NOW = T0


def letter(
    message_id: str = "m-1",
    *,
    age: timedelta = timedelta(minutes=5),
    reason: str = "provider_rejected",
    type_: str = "booking_confirmed",
    attributes: dict[str, str | int] | None = None,
    body: str | None = None,
    key: str = ABSENT,
    first_dead_lettered_at: datetime | None = None,
) -> DeadLetter:
    return DeadLetter(
        message_id=message_id,
        sent_at=NOW - age,
        failure_reason=reason,
        message_type=type_,
        attributes=attributes
        if attributes is not None
        else {"failure_reason": reason, "email_type": type_, "schema": "booking-email/v1", "attempts": 1},
        body=body
        if body is not None
        else json.dumps({"job_id": message_id, "recipient": {"email": GUEST_EMAIL, "name": GUEST_NAME}}),
        handle=f"rh-{message_id}",
        key=key,
        first_dead_lettered_at=first_dead_lettered_at,
    )


# -- what a letter shows -------------------------------------------------------------------------


def test_an_email_letter_is_typed_by_its_attribute_never_by_its_body() -> None:
    body = json.dumps({"type": "policy_drift.recovered", "recipient": {"email": GUEST_EMAIL}})
    assert message_type_of(QueueKind.EMAIL, {"email_type": "booking_updated"}, body) == "booking_updated"
    assert message_type_of(QueueKind.EMAIL, {}, body) == UNKNOWN_TYPE


def test_a_notification_letter_is_typed_by_its_body_only_when_the_type_is_known() -> None:
    assert (
        message_type_of(QueueKind.NOTIFICATIONS, {}, json.dumps({"type": "policy_drift.unrecovered"}))
        == "policy_drift.unrecovered"
    )
    # Given bodies that are not drift events: their text is never shown
    assert message_type_of(QueueKind.NOTIFICATIONS, {}, json.dumps({"type": GUEST_EMAIL})) == UNKNOWN_TYPE
    assert message_type_of(QueueKind.NOTIFICATIONS, {}, "not json " + GUEST_NAME) == UNKNOWN_TYPE
    assert message_type_of(QueueKind.NOTIFICATIONS, {}, json.dumps([1, 2])) == UNKNOWN_TYPE


#: Values a publisher could have set that look like identifiers: a name and a phone number.
NAME_LIKE, PHONE_LIKE = "AnaPerez", "34600111222"


@pytest.mark.parametrize("kind", list(QueueKind))
@pytest.mark.parametrize(
    "value", [f"550 rejected {GUEST_EMAIL}", GUEST_NAME, NAME_LIKE, PHONE_LIKE, "+34600111222", 34600111222]
)
def test_an_attribute_value_the_dlq_does_not_know_is_never_shown(kind: QueueKind, value: str | int) -> None:
    assert failure_reason_of(kind, {"failure_reason": value}) == UNRECOGNIZED
    assert message_type_of(QueueKind.EMAIL, {"email_type": value}, "{}") == UNRECOGNIZED
    assert message_type_of(QueueKind.NOTIFICATIONS, {}, json.dumps({"type": value})) == UNKNOWN_TYPE
    assert letter(attributes={"attempts": value}).attempts == UNRECOGNIZED


def test_a_reason_of_the_other_dlq_is_not_shown() -> None:
    assert failure_reason_of(QueueKind.EMAIL, {"failure_reason": "webhook_rejected"}) == UNRECOGNIZED
    assert failure_reason_of(QueueKind.NOTIFICATIONS, {"failure_reason": "provider_rejected"}) == UNRECOGNIZED


def test_attempts_are_shown_as_a_small_count() -> None:
    assert letter(attributes={"attempts": 3}).attempts == "3"
    assert letter(attributes={"attempts": "12"}).attempts == "12"
    assert letter(attributes={}).attempts == "-"
    assert letter(attributes={"attempts": "3 " + GUEST_NAME}).attempts == UNRECOGNIZED


def test_a_letter_sqs_moved_itself_has_reason_none() -> None:
    assert failure_reason_of(QueueKind.EMAIL, {"email_type": "booking_confirmed"}) == NO_REASON
    assert (
        failure_reason_of(QueueKind.EMAIL, {"failure_reason": "transient_exhausted"}) == "transient_exhausted"
    )
    assert (
        failure_reason_of(QueueKind.NOTIFICATIONS, {"failure_reason": "webhook_rejected"})
        == "webhook_rejected"
    )


def test_a_letter_never_shows_its_body_or_handle_in_its_repr() -> None:
    assert GUEST_EMAIL not in repr(letter())
    assert "rh-" not in repr(letter())


def test_a_redriven_copy_keeps_the_producer_attributes_attempts_and_key_but_not_the_reason() -> None:
    first = NOW - timedelta(days=2)
    given = letter(key="bk_1#booking_confirmed#0", first_dead_lettered_at=first)
    assert redriven_attributes(QueueKind.EMAIL, given) == {
        "email_type": "booking_confirmed",
        "schema": "booking-email/v1",
        "attempts": 1,
        "dedupe_key": "bk_1#booking_confirmed#0",
        "first_dead_lettered_at": _iso(first),
    }


def test_a_redriven_copy_carries_when_the_letter_was_first_dead_lettered_even_without_the_attribute() -> None:
    # Given a letter that arrived 3 h ago with no first_dead_lettered_at (one SQS moved itself)
    arrived = letter(reason=NO_REASON, age=timedelta(hours=3))
    # Then its copy says it was dead-lettered then, so its next dead-lettering keeps that age
    copy = redriven_attributes(QueueKind.EMAIL, arrived)
    assert copy["first_dead_lettered_at"] == _iso(NOW - timedelta(hours=3))


def test_a_redriven_copy_passes_on_no_value_the_dlq_does_not_recognise() -> None:
    planted = letter(
        type_=UNRECOGNIZED,
        key=UNRECOGNIZED,
        attributes={"email_type": NAME_LIKE, "schema": PHONE_LIKE, "attempts": PHONE_LIKE, "dedupe_key": "x"},
    )
    assert set(redriven_attributes(QueueKind.EMAIL, planted)) == {"first_dead_lettered_at"}


def test_a_redriven_notification_keeps_attempts_and_nothing_of_an_email() -> None:
    event = letter(reason="webhook_unreachable", type_="policy_drift.recovered", key=str(uuid.uuid4()))
    copy = redriven_attributes(QueueKind.NOTIFICATIONS, replace(event, attributes={"attempts": 5}))
    assert set(copy) == {"attempts", "first_dead_lettered_at"}


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


@pytest.mark.parametrize(
    "attempts", [10**6, "1000000", "07946095800", "0999", "-1", "1e3", "\u0661\u0662", " 12"]
)
def test_attempts_above_six_digits_or_not_a_count_are_unrecognized(attempts: str | int) -> None:
    # (a phone number planted there is one of these: never printed)
    assert letter(attributes={"attempts": attempts}).attempts == UNRECOGNIZED


@pytest.mark.parametrize("attempts", [0, 5, "999", 999, 1000, "6089", 999_999])
def test_attempts_up_to_six_digits_are_shown(attempts: str | int) -> None:
    assert letter(attributes={"attempts": attempts}).attempts == str(attempts)


@pytest.mark.parametrize(
    "key",
    ["bk_42#booking_confirmed#0", "A-b_9#admin_policy_drift#2147483647", f"{'x' * 128}#booking_updated#3"],
)
def test_a_dedupe_key_is_shown_when_it_has_the_form_of_one(key: str) -> None:
    assert is_dedupe_key(key)
    assert key_of(QueueKind.EMAIL, {"dedupe_key": key}, "{}") == key


@pytest.mark.parametrize(
    "key",
    [
        f"{GUEST_EMAIL}#booking_confirmed#0",
        f"{GUEST_NAME}#booking_confirmed#0",
        "bk_42#booking_confirmd#0",
        "bk_42#booking_confirmed#01",
        "bk_42#booking_confirmed#2147483648",
        "bk_42#booking_confirmed",
        f"{'x' * 129}#booking_updated#3",
        "bk_42#booking_confirmed#0\n",
        PHONE_LIKE,
    ],
)
def test_anything_else_in_dedupe_key_is_unrecognized(key: str) -> None:
    assert not is_dedupe_key(key)
    assert key_of(QueueKind.EMAIL, {"dedupe_key": key}, "{}") == UNRECOGNIZED


def test_an_email_letter_without_dedupe_key_shows_none_and_its_body_is_never_read() -> None:
    body = json.dumps(
        {"booking_id": "bk_42", "email_type": "booking_confirmed", "event_id": str(uuid.uuid4())}
    )
    assert key_of(QueueKind.EMAIL, {}, body) == ABSENT


def test_a_notification_letter_shows_its_event_id_only_when_it_is_one() -> None:
    event_id = str(uuid.uuid4())
    assert key_of(QueueKind.NOTIFICATIONS, {}, json.dumps({"event_id": event_id})) == event_id
    assert key_of(QueueKind.NOTIFICATIONS, {}, json.dumps({"event_id": GUEST_EMAIL})) == UNRECOGNIZED
    assert key_of(QueueKind.NOTIFICATIONS, {}, json.dumps({"event_id": 34600111222})) == UNRECOGNIZED
    assert key_of(QueueKind.NOTIFICATIONS, {}, json.dumps({"type": "policy_drift.recovered"})) == ABSENT
    assert key_of(QueueKind.NOTIFICATIONS, {}, "not json " + GUEST_NAME) == ABSENT
    # Never the dedupe_key attribute: a notification letter has none of its own
    assert key_of(QueueKind.NOTIFICATIONS, {"dedupe_key": "bk_42#booking_confirmed#0"}, "{}") == ABSENT


@pytest.mark.parametrize(
    ("value", "read"),
    [
        ("2026-11-29T10:00:00Z", datetime(2026, 11, 29, 10, tzinfo=UTC)),
        ("2026-11-29T10:00:00.123Z", datetime(2026, 11, 29, 10, 0, 0, 123000, tzinfo=UTC)),
        ("2026-11-29T12:00:00+02:00", datetime(2026, 11, 29, 10, tzinfo=UTC)),
    ],
)
def test_first_dead_lettered_at_is_read_when_it_is_an_instant_before_the_arrival(
    value: str, read: datetime
) -> None:
    assert first_dead_lettered_at_of({"first_dead_lettered_at": value}, NOW) == read


@pytest.mark.parametrize(
    "value",
    [
        "",
        "yesterday",
        "2026-11-29",
        "2026-11-29T10:00:00",  # no offset
        "2026-13-01T10:00:00Z",
        "2026-04-31T10:00:00Z",
        "1999-12-31T10:00:00Z",
        "2100-01-01T00:00:00Z",
        "2026-11-29T10:00:00+24:00",
        "2026-11-29T10:00:00+14:01",
        "2026-11-29 10:00:00Z",
        _iso(NOW + CLOCK_SKEW + timedelta(seconds=1)),  # after the letter arrived
        PHONE_LIKE,
        1_900_000_000,
    ],
)
def test_any_other_first_dead_lettered_at_is_ignored(value: str | int) -> None:
    assert first_dead_lettered_at_of({"first_dead_lettered_at": value}, NOW) is None


def test_a_letters_age_counts_from_its_first_dead_lettering_across_redrives() -> None:
    # Given a letter dead-lettered 3 days ago, redriven, and dead-lettered again 5 minutes ago
    again = letter(age=timedelta(minutes=5), first_dead_lettered_at=NOW - timedelta(days=3))
    assert again.age(NOW) == timedelta(days=3)
    assert Selection(older_than=timedelta(days=1)).matches(again, NOW)
    assert not Selection(newer_than=timedelta(hours=1)).matches(again, NOW)
    # And SQS keeps it for its retention from its own arrival, not from the first dead-lettering
    assert again.expires_in(NOW, timedelta(days=14)) == timedelta(days=14, minutes=-5)
    # Without the attribute, the age is the arrival's
    assert letter(age=timedelta(minutes=5)).age(NOW) == timedelta(minutes=5)


def test_the_permanent_reasons_need_force() -> None:
    for reason in ("invalid_json", "schema_invalid", "render_failed", "provider_rejected"):
        assert needs_force(QueueKind.EMAIL, letter(reason=reason))
    for reason in ("transient_exhausted", "throttle_exhausted", NO_REASON, UNRECOGNIZED):
        assert not needs_force(QueueKind.EMAIL, letter(reason=reason))
    assert needs_force(QueueKind.NOTIFICATIONS, letter(reason="webhook_rejected"))
    assert needs_force(QueueKind.NOTIFICATIONS, letter(reason="invalid_event"))
    assert not needs_force(QueueKind.NOTIFICATIONS, letter(reason="webhook_unreachable"))
    assert QueueKind.EMAIL.permanent_reasons < set(QueueKind.EMAIL.reasons)
    assert QueueKind.NOTIFICATIONS.permanent_reasons < set(QueueKind.NOTIFICATIONS.reasons)


def test_each_dlq_knows_its_reasons_and_types() -> None:
    assert "transient_exhausted" in QueueKind.EMAIL.reasons
    assert "webhook_rejected" in QueueKind.NOTIFICATIONS.reasons
    assert NO_REASON in QueueKind.EMAIL.reasons
    assert QueueKind.NOTIFICATIONS.types == (
        "policy_drift.recovered",
        "policy_drift.unrecovered",
        UNKNOWN_TYPE,
    )
    assert "admin_policy_drift" in QueueKind.EMAIL.types


# -- durations, ages, selection, grouping -------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "span"),
    [
        ("30s", timedelta(seconds=30)),
        ("15m", timedelta(minutes=15)),
        ("2h", timedelta(hours=2)),
        ("7d", timedelta(days=7)),
        ("1w", timedelta(weeks=1)),
        ("1h30m", timedelta(minutes=90)),
        ("2D", timedelta(days=2)),
    ],
)
def test_durations_are_numbers_with_units(text: str, span: timedelta) -> None:
    assert parse_duration(text) == span


@pytest.mark.parametrize("text", ["", "2", "h", "2x", "1.5h", "-1h", "2h junk", "1h 30m"])
def test_anything_else_is_not_a_duration(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_ages_read_at_two_units() -> None:
    assert [
        describe_duration(timedelta(seconds=s))
        for s in (42, 12 * 60, 3 * 3600 + 5 * 60, 2 * 86400 + 4 * 3600)
    ] == ["42s", "12m", "3h05m", "2d04h"]


@pytest.mark.parametrize(
    ("age", "bucket"),
    [
        (timedelta(0), AgeBucket.UNDER_AN_HOUR),
        (timedelta(minutes=59, seconds=59), AgeBucket.UNDER_AN_HOUR),
        (timedelta(hours=1), AgeBucket.UNDER_A_DAY),
        (timedelta(hours=23, minutes=59), AgeBucket.UNDER_A_DAY),
        (timedelta(days=1), AgeBucket.UNDER_A_WEEK),
        (timedelta(days=6, hours=23), AgeBucket.UNDER_A_WEEK),
        (timedelta(days=7), AgeBucket.OLDER),
        (timedelta(days=13), AgeBucket.OLDER),
    ],
)
def test_age_buckets_have_closed_lower_bounds(age: timedelta, bucket: AgeBucket) -> None:
    assert age_bucket(age) is bucket


def test_a_letter_sent_after_now_counts_as_zero_age() -> None:
    assert letter(age=-timedelta(seconds=3)).age(NOW) == timedelta(0)


def test_no_criterion_selects_everything() -> None:
    everything = Selection()
    assert everything.everything
    assert everything.describe() == "every dead letter"
    assert everything.matches(letter(age=timedelta(days=13)), NOW)


def test_a_selection_matches_every_criterion_given() -> None:
    # Given letters of two reasons, two types and two ages
    old_rejected = letter("a", age=timedelta(days=2))
    new_rejected = letter("b", age=timedelta(minutes=10))
    new_transient = letter("c", reason="transient_exhausted", age=timedelta(minutes=10))
    new_cancelled = letter("d", type_="booking_cancelled", age=timedelta(minutes=10))
    letters = [old_rejected, new_rejected, new_transient, new_cancelled]

    def chosen(selection: Selection) -> list[str]:
        return [x.message_id for x in letters if selection.matches(x, NOW)]

    assert chosen(Selection(reasons=frozenset({"provider_rejected"}))) == ["a", "b", "d"]
    assert chosen(Selection(types=frozenset({"booking_cancelled"}))) == ["d"]
    assert chosen(Selection(older_than=timedelta(days=1))) == ["a"]
    assert chosen(Selection(newer_than=timedelta(hours=1))) == ["b", "c", "d"]
    both = Selection(
        reasons=frozenset({"provider_rejected"}),
        types=frozenset({"booking_confirmed"}),
        newer_than=timedelta(hours=1),
    )
    assert chosen(both) == ["b"]
    assert both.describe() == "reason provider_rejected, type booking_confirmed, newer than 1h00m"


def test_older_than_includes_the_boundary_and_newer_than_excludes_it() -> None:
    exactly_an_hour = letter(age=timedelta(hours=1))
    assert Selection(older_than=timedelta(hours=1)).matches(exactly_an_hour, NOW)
    assert not Selection(newer_than=timedelta(hours=1)).matches(exactly_an_hour, NOW)


def test_letters_group_by_reason_type_and_age_in_a_stable_order() -> None:
    letters = [
        letter("1", reason="transient_exhausted", age=timedelta(days=8)),
        letter("2", age=timedelta(minutes=3)),
        letter("3", age=timedelta(minutes=40)),
        letter("4", age=timedelta(hours=5)),
        letter("5", type_="booking_cancelled", age=timedelta(minutes=1)),
    ]
    rows = [(g.failure_reason, g.message_type, g.age, g.count, g.oldest) for g in group(letters, NOW)]
    assert rows == [
        ("provider_rejected", "booking_cancelled", AgeBucket.UNDER_AN_HOUR, 1, timedelta(minutes=1)),
        ("provider_rejected", "booking_confirmed", AgeBucket.UNDER_AN_HOUR, 2, timedelta(minutes=40)),
        ("provider_rejected", "booking_confirmed", AgeBucket.UNDER_A_DAY, 1, timedelta(hours=5)),
        ("transient_exhausted", "booking_confirmed", AgeBucket.OLDER, 1, timedelta(days=8)),
    ]
    assert group([], NOW) == []


# -- pacing --------------------------------------------------------------------------------------


@dataclass
class FakeClock:
    """Monotonic seconds; ``sleep`` advances them and records how long it was asked to wait."""

    now: float = 1000.0
    sleeps: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_the_rate_limiter_spaces_calls_evenly() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10, clock=clock, sleep=clock.sleep)
    for _ in range(5):
        limiter.wait()
    assert clock.sleeps == pytest.approx([0.1, 0.1, 0.1, 0.1])
    assert clock.now == pytest.approx(1000.4)


def test_the_rate_limiter_does_not_wait_when_calls_are_slower_than_the_rate_nor_save_up_a_burst() -> None:
    clock = FakeClock()
    limiter = RateLimiter(2, clock=clock, sleep=clock.sleep)
    limiter.wait()
    clock.advance(10)  # idle for a long while
    limiter.wait()
    limiter.wait()
    assert clock.sleeps == pytest.approx([0.5])


def test_the_rate_limiter_counts_time_spent_between_calls() -> None:
    clock = FakeClock()
    limiter = RateLimiter(4, clock=clock, sleep=clock.sleep)
    limiter.wait()
    clock.advance(0.1)  # the send itself took 100 ms
    limiter.wait()
    assert clock.sleeps == pytest.approx([0.15])


def test_a_rate_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        RateLimiter(0)


# -- one pass over a DLQ -------------------------------------------------------------------------


@dataclass
class FakeDlq:
    """A DLQ in memory: received letters are hidden until released, extended or deleted."""

    letters: list[DeadLetter]
    clock: FakeClock = field(default_factory=FakeClock)
    hidden_until: dict[str, float] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    fail_delete: set[str] = field(default_factory=set)
    fail_receive_after: int | None = None
    interrupt_on_delete: bool = False
    receives: int = 0

    def visible(self) -> list[DeadLetter]:
        return [x for x in self.letters if self.hidden_until.get(x.message_id, 0) <= self.clock.now]

    def receive(self, hide_for_seconds: int) -> Sequence[DeadLetter]:
        self.receives += 1
        if self.fail_receive_after is not None and self.receives > self.fail_receive_after:
            raise InfrastructureError("receive_message failed: ServiceUnavailable")
        batch = self.visible()[:10]
        for x in batch:
            self.hidden_until[x.message_id] = self.clock.now + hide_for_seconds
        self.calls.append(f"receive {len(batch)}")
        return batch

    def hide(self, letters: Sequence[DeadLetter], seconds: int) -> None:
        for x in letters:
            self.hidden_until[x.message_id] = self.clock.now + seconds
        if letters:
            self.calls.append(f"hide {len(letters)} for {seconds}")

    def delete(self, letter: DeadLetter) -> None:
        if self.interrupt_on_delete:
            raise KeyboardInterrupt
        if letter.message_id in self.fail_delete:
            raise InfrastructureError("delete_message failed: ServiceUnavailable")
        self.letters.remove(letter)
        self.calls.append(f"delete {letter.message_id}")


@dataclass
class FakeSource:
    sent: list[OutgoingMessage] = field(default_factory=list)
    log: list[str] | None = None
    refuse: bool = False

    def send(self, message: OutgoingMessage) -> str:
        if self.refuse:
            raise QueueSendFailed("send_message failed: ServiceUnavailable")
        self.sent.append(message)
        if self.log is not None:
            self.log.append("send")
        return f"copy-{len(self.sent)}"

    def change_visibility(self, receipt_handle: str, seconds: int) -> None:
        return None


def mixed_letters(count: int = 25) -> list[DeadLetter]:
    """``count`` letters, every third one ``transient_exhausted``, the rest ``provider_rejected``."""
    return [
        letter(f"m-{i:02d}", reason="transient_exhausted" if i % 3 == 0 else "provider_rejected")
        for i in range(count)
    ]


def test_a_look_sees_every_letter_once_and_leaves_them_all_visible() -> None:
    dlq = FakeDlq(mixed_letters())
    looked = sweep(dlq, Selection(), NOW, clock=dlq.clock)
    assert looked.examined == 25
    assert sorted(x.message_id for x in looked.selected) == sorted(x.message_id for x in dlq.letters)
    assert looked.done == []
    assert len(dlq.visible()) == 25  # released at the end
    assert not any(call.startswith("delete") for call in dlq.calls)


def test_a_pass_acts_on_the_selection_only() -> None:
    dlq = FakeDlq(mixed_letters())
    transient = Selection(reasons=frozenset({"transient_exhausted"}))
    discarded = sweep(dlq, transient, NOW, Discard(dlq), clock=dlq.clock)
    assert len(discarded.done) == 9
    assert {x.letter.failure_reason for x in discarded.done} == {"transient_exhausted"}
    assert {x.failure_reason for x in dlq.letters} == {"provider_rejected"}
    assert len(dlq.visible()) == 16


def test_a_redrive_sends_before_it_deletes_and_drops_the_reason() -> None:
    dlq = FakeDlq([letter("m-1")])
    source = FakeSource(log=dlq.calls)
    clock = FakeClock()
    moved = sweep(
        dlq,
        Selection(),
        NOW,
        Redrive(QueueKind.EMAIL, dlq, source, RateLimiter(10, clock=clock, sleep=clock.sleep)),
    )
    assert dlq.calls[:3] == ["receive 1", "send", "delete m-1"]
    assert moved.done[0].copy_id == "copy-1"
    [copy] = source.sent
    assert "failure_reason" not in copy.attributes
    assert copy.delay_seconds == 0
    assert dlq.letters == []


def test_a_redrive_is_paced_at_its_rate() -> None:
    clock = FakeClock()
    dlq = FakeDlq(mixed_letters(21), clock=clock)
    sweep(
        dlq,
        Selection(),
        NOW,
        Redrive(QueueKind.EMAIL, dlq, FakeSource(), RateLimiter(5, clock=clock, sleep=clock.sleep)),
        clock=clock,
    )
    assert clock.sleeps == pytest.approx([0.2] * 20)


def test_letters_stay_hidden_for_a_pass_longer_than_their_visibility_timeout() -> None:
    # Given a slow redrive (20 s a letter) of the 5 last letters of 30, each hidden 30 s when received
    clock = FakeClock()
    letters = [
        letter(f"m-{i:02d}", type_="booking_cancelled" if i >= 25 else "booking_confirmed") for i in range(30)
    ]
    dlq = FakeDlq(letters, clock=clock)
    slow = Redrive(QueueKind.EMAIL, dlq, FakeSource(), RateLimiter(0.05, clock=clock, sleep=clock.sleep))
    result = sweep(
        dlq, Selection(types=frozenset({"booking_cancelled"})), NOW, slow, clock=clock, hide_for=30
    )
    # Then every letter was looked at once, the others' visibility extended while the pass lasted
    assert result.examined == 30
    assert len(result.done) == 5
    assert any(call.endswith("for 30") for call in dlq.calls)
    assert clock.now - 1000 >= 80
    assert len(dlq.letters) == 25
    assert len(dlq.visible()) == 25


def test_a_letter_seen_again_is_not_looked_at_twice_and_is_released_by_its_newest_handle() -> None:
    # Given a DLQ where SQS shows a hidden letter again (its timeout ran out mid-pass)
    class ShowingAgain(FakeDlq):
        released: list[str] = []

        def receive(self, hide_for_seconds: int) -> Sequence[DeadLetter]:
            batch = super().receive(hide_for_seconds)
            if self.receives == 2:
                return [replace(letter("m-1"), handle="rh-newest")]
            return batch

        def hide(self, letters: Sequence[DeadLetter], seconds: int) -> None:
            self.released.extend(x.handle for x in letters if seconds == 0)
            super().hide(letters, seconds)

    dlq = ShowingAgain([letter("m-1"), letter("m-2")])
    released = dlq.released
    looked = sweep(dlq, Selection(), NOW, clock=dlq.clock)
    assert looked.examined == 2
    assert sorted(released) == ["rh-m-2", "rh-newest"]


def test_a_pass_asks_the_selection_once_per_letter(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[str] = []
    real_matches = Selection.matches

    def matches(self: Selection, letter: DeadLetter, now: datetime) -> bool:
        asked.append(letter.message_id)
        return real_matches(self, letter, now)

    monkeypatch.setattr(Selection, "matches", matches)
    dlq = FakeDlq(mixed_letters(12))
    sweep(dlq, Selection(reasons=frozenset({"transient_exhausted"})), NOW, Discard(dlq), clock=dlq.clock)
    assert sorted(asked) == [f"m-{i:02d}" for i in range(12)]


def test_a_long_pass_keeps_every_letter_hidden_extending_it_only_past_half_its_timeout() -> None:
    # Given 40 letters looked at 2 s apart (80 s in all), each hidden 30 s when received
    class Recording(FakeDlq):
        held: dict[str, list[float]] = {}

        def receive(self, hide_for_seconds: int) -> Sequence[DeadLetter]:
            batch = super().receive(hide_for_seconds)
            for x in batch:
                self.held[x.message_id] = [self.clock.now]
            return batch

        def hide(self, letters: Sequence[DeadLetter], seconds: int) -> None:
            for x in letters:
                self.held[x.message_id].append(self.clock.now)
            super().hide(letters, seconds)

    clock = FakeClock()
    dlq = Recording(mixed_letters(40), clock=clock)
    sweep(dlq, Selection(), NOW, clock=clock, hide_for=30, on_progress=lambda _p: clock.advance(2))
    # Then from its receive to its release no letter went 30 s without an extension, nor was
    # extended sooner than 15 s after the last
    assert len(dlq.held) == 40
    for times in dlq.held.values():
        gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
        assert all(gap < 30 for gap in gaps)
        assert all(gap >= 15 for gap in gaps[:-1])
    assert max(len(times) for times in dlq.held.values()) >= 5  # received, extended 3 times, released
    assert len(dlq.visible()) == 40


def test_a_limit_bounds_how_many_letters_are_looked_at_and_releases_the_rest() -> None:
    dlq = FakeDlq(mixed_letters())
    looked = sweep(dlq, Selection(), NOW, Discard(dlq), limit=4, clock=dlq.clock)
    assert looked.examined == 4
    assert len(dlq.letters) == 21
    assert len(dlq.visible()) == 21


def test_a_failed_delete_after_the_send_stops_the_pass_and_says_the_letter_is_on_both_queues() -> None:
    dlq = FakeDlq(mixed_letters(5), fail_delete={"m-02"})
    source = FakeSource()
    clock = FakeClock()
    result = sweep(
        dlq,
        Selection(),
        NOW,
        Redrive(QueueKind.EMAIL, dlq, source, RateLimiter(10, clock=clock, sleep=clock.sleep)),
    )
    assert [x.letter.message_id for x in result.done] == ["m-00", "m-01"]
    assert result.stopped is not None
    assert result.stopped.letter is not None
    assert result.stopped.letter.message_id == "m-02"
    assert result.stopped.copy_id == "copy-3"
    assert "ServiceUnavailable" in result.stopped.code
    # Then nothing is lost: the copy is on the source queue and the letter visible in the DLQ
    assert len(source.sent) == 3
    assert [x.message_id for x in dlq.visible()] == ["m-02", "m-03", "m-04"]


def test_a_refused_send_deletes_nothing() -> None:
    dlq = FakeDlq(mixed_letters(3))
    clock = FakeClock()
    result = sweep(
        dlq,
        Selection(),
        NOW,
        Redrive(
            QueueKind.EMAIL, dlq, FakeSource(refuse=True), RateLimiter(10, clock=clock, sleep=clock.sleep)
        ),
    )
    assert result.stopped is not None
    assert result.stopped.copy_id is None
    assert result.done == []
    assert len(dlq.visible()) == 3


def test_a_receive_failure_stops_the_pass_and_releases_what_it_held() -> None:
    dlq = FakeDlq(mixed_letters(15), fail_receive_after=1)
    result = sweep(dlq, Selection(reasons=frozenset({"none"})), NOW, Discard(dlq), clock=dlq.clock)
    assert result.stopped is not None
    assert "receive_message" in result.stopped.code
    assert len(dlq.visible()) == 15


def test_ctrl_c_is_reported_with_what_was_done_and_releases_the_rest() -> None:
    dlq = FakeDlq(mixed_letters(3))
    dlq.interrupt_on_delete = True
    result = sweep(dlq, Selection(), NOW, Discard(dlq), clock=dlq.clock)
    assert result.stopped is not None
    assert result.stopped.code == "interrupted"
    assert len(dlq.visible()) == 3


def test_progress_is_reported_after_each_letter_looked_at() -> None:
    dlq = FakeDlq(mixed_letters(12))
    seen: list[tuple[int, int]] = []
    transient = Selection(reasons=frozenset({"transient_exhausted"}))
    sweep(
        dlq,
        transient,
        NOW,
        Discard(dlq),
        clock=dlq.clock,
        on_progress=lambda p: seen.append((p.examined, len(p.done))),
    )
    assert seen == [(n, (n + 2) // 3) for n in range(1, 13)]


# -- a pass acts only on the letters there when it began -----------------------------------------


@dataclass
class FailingAgain(FakeSource):
    """A source queue whose consumer fails every copy at once and dead-letters it again, unchanged,
    under a new message id, stamped ``stamped`` after the original (SQS's clock)."""

    dlq: FakeDlq | None = None
    stamped: timedelta = timedelta(0)
    counter: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def send(self, message: OutgoingMessage) -> str:
        copy_id = super().send(message)
        assert self.dlq is not None
        original = next(x for x in self.dlq.letters if x.body == message.body)
        self.dlq.letters.append(
            replace(
                original, message_id=f"again-{next(self.counter)}", sent_at=original.sent_at + self.stamped
            )
        )
        return copy_id


def redrive_of(dlq: FakeDlq, source: FakeSource) -> Redrive:
    return Redrive(QueueKind.EMAIL, dlq, source, RateLimiter(1000, clock=dlq.clock, sleep=dlq.clock.sleep))


@pytest.mark.parametrize(
    "began_at",
    [
        None,  # no SQS time to go by: the message alone tells
        NOW + timedelta(hours=1),  # SQS's clock says the letter back was there before: still ours
    ],
)
def test_a_letter_moved_and_dead_lettered_again_during_the_pass_is_not_moved_again(
    began_at: datetime | None,
) -> None:
    # Given one letter, whose copy the consumer fails again and dead-letters again at once
    dlq = FakeDlq([letter("m-1", reason="transient_exhausted")])
    source = FailingAgain(dlq=dlq)
    # When a pass redrives everything
    moved = sweep(
        dlq, Selection(), NOW, redrive_of(dlq, source), clock=dlq.clock, began_at=began_at, present=1
    )
    # Then it moved the letter once, and left the one back in the DLQ for the next pass
    assert [x.letter.message_id for x in moved.done] == ["m-1"]
    assert len(source.sent) == 1
    assert moved.returned == 1
    assert [x.message_id for x in dlq.visible()] == ["again-1"]


def test_a_letter_that_reached_the_dlq_after_the_pass_began_is_left_by_sqs_time() -> None:
    # Given a pass that began (SQS's clock) after one letter arrived and before another did
    dlq = FakeDlq([letter("before", age=timedelta(minutes=5)), letter("after", age=-timedelta(seconds=1))])
    # When it discards everything
    result = sweep(dlq, Selection(), NOW, Discard(dlq), clock=dlq.clock, began_at=NOW, present=1)
    # Then the one that arrived during the pass is left, counted
    assert [x.letter.message_id for x in result.done] == ["before"]
    assert result.late == 1
    assert [x.message_id for x in dlq.visible()] == ["after"]


def test_a_letter_stamped_by_sqs_after_the_pass_began_is_not_moved_whatever_its_message() -> None:
    # Given a consumer that fails every copy again with SQS stamping it after the pass began, and
    # a letter whose message the tool has not seen before (a different body each time)
    class NewBody(FailingAgain):
        def send(self, message: OutgoingMessage) -> str:
            copy_id = FakeSource.send(self, message)
            assert self.dlq is not None
            again = letter(
                f"again-{next(self.counter)}", age=-timedelta(seconds=1), body=f"{{{len(self.sent)}}}"
            )
            self.dlq.letters.append(again)
            return copy_id

    dlq = FakeDlq([letter("m-1")])
    source = NewBody(dlq=dlq)
    moved = sweep(dlq, Selection(), NOW, redrive_of(dlq, source), clock=dlq.clock, began_at=NOW, present=1)
    assert len(source.sent) == 1
    assert moved.late == 1


def test_a_pass_stops_looking_when_letters_keep_arriving() -> None:
    # Given a DLQ of 3 letters into which 10 new ones arrive at each receive (an ongoing outage)
    class Flooded(FakeDlq):
        def receive(self, hide_for_seconds: int) -> Sequence[DeadLetter]:
            for _ in range(10):
                self.letters.append(letter(f"new-{len(self.letters)}", age=-timedelta(seconds=1)))
            return super().receive(hide_for_seconds)

    dlq = Flooded([letter(f"m-{i}") for i in range(3)])
    # When a pass that began with the 3 looks at the DLQ
    looked = sweep(dlq, Selection(), NOW, clock=dlq.clock, began_at=NOW, present=3)
    # Then it stops, says so, and has looked at the 3 it could find and no more than a few receives
    assert looked.gave_up
    assert looked.examined == 3
    assert dlq.receives <= 4
    assert len(dlq.visible()) == len(dlq.letters)


def test_a_withheld_letter_is_selected_but_left_where_it_was() -> None:
    dlq = FakeDlq(mixed_letters(6))
    source = FakeSource()
    result = sweep(
        dlq,
        Selection(),
        NOW,
        redrive_of(dlq, source),
        clock=dlq.clock,
        withhold=lambda x: x.failure_reason == "provider_rejected",
    )
    assert len(result.selected) == 6
    assert {x.failure_reason for x in result.withheld} == {"provider_rejected"}
    assert {x.letter.failure_reason for x in result.done} == {"transient_exhausted"}
    assert len(source.sent) == 2
    assert {x.failure_reason for x in dlq.visible()} == {"provider_rejected"}


def test_each_action_is_heard_of_as_soon_as_it_is_done() -> None:
    dlq = FakeDlq(mixed_letters(3))
    heard: list[str] = []
    source = FakeSource(log=heard)
    sweep(
        dlq,
        Selection(),
        NOW,
        redrive_of(dlq, source),
        clock=dlq.clock,
        on_done=lambda done: heard.append(f"done {done.letter.message_id} -> {done.copy_id}"),
    )
    assert heard == [
        "send",
        "done m-00 -> copy-1",
        "send",
        "done m-01 -> copy-2",
        "send",
        "done m-02 -> copy-3",
    ]


def test_two_letters_of_one_message_are_both_discarded() -> None:
    # Given the same job twice in the DLQ (a redrive interrupted between send and delete)
    body = json.dumps({"job_id": "j-1"})
    dlq = FakeDlq([letter("m-1", body=body), letter("m-2", body=body)])
    result = sweep(dlq, Selection(), NOW, Discard(dlq), clock=dlq.clock, began_at=NOW, present=2)
    assert len(result.done) == 2
    assert dlq.letters == []


# -- selecting single letters, and the unreadable ------------------------------------------------


def test_a_letter_is_selected_by_its_dedupe_key_or_its_message_id() -> None:
    letters = [letter("m-1", key="bk_1#booking_confirmed#0"), letter("m-2", key="bk_2#booking_confirmed#0")]
    by_key = Selection(keys=frozenset({"bk_2#booking_confirmed#0"}))
    by_id = Selection(message_ids=frozenset({"m-1"}))
    assert [x.message_id for x in letters if by_key.matches(x, NOW)] == ["m-2"]
    assert [x.message_id for x in letters if by_id.matches(x, NOW)] == ["m-1"]
    assert not by_key.everything
    assert not by_id.everything
    assert by_key.describe() == "dedupe_key bk_2#booking_confirmed#0"
    assert by_id.describe() == "message id m-1"
    assert Selection(keys=frozenset({"e-1"})).describe("event_id") == "event_id e-1"


def test_unrecognized_is_a_reason_and_a_type_to_select_by() -> None:
    unreadable = letter("m-1", reason=UNRECOGNIZED, type_=UNRECOGNIZED)
    assert Selection(reasons=frozenset({UNRECOGNIZED})).matches(unreadable, NOW)
    assert Selection(types=frozenset({UNRECOGNIZED})).matches(unreadable, NOW)
    assert not Selection(reasons=frozenset({UNRECOGNIZED})).matches(letter("m-2"), NOW)
    assert UNRECOGNIZED in QueueKind.EMAIL.selectable_reasons
    assert UNRECOGNIZED in QueueKind.NOTIFICATIONS.selectable_reasons
    assert UNRECOGNIZED in QueueKind.EMAIL.selectable_types


def test_a_group_says_how_soon_sqs_deletes_its_first_letter() -> None:
    letters = [letter("1", age=timedelta(minutes=3)), letter("2", age=timedelta(minutes=40))]
    [only] = group(letters, NOW, retention=timedelta(days=14))
    assert only.expires == timedelta(days=14, minutes=-40)
    [unknown] = group(letters, NOW)
    assert unknown.expires is None


@pytest.mark.parametrize("digits", ["²", "\u0661\u0662", "1\u00b2"])
def test_a_number_attribute_of_other_digits_is_read_as_text_not_a_crash(digits: str) -> None:
    # Given a Number attribute whose value Python counts as digits but int() may refuse
    read = contract_attributes({"attempts": {"DataType": "Number", "StringValue": digits}})
    # Then it is kept as text, which the letter shows as unrecognized
    assert read == {"attempts": digits}
    assert letter(attributes=read).attempts == UNRECOGNIZED


def test_only_the_services_attributes_are_read() -> None:
    read = contract_attributes(
        {
            "attempts": {"DataType": "Number", "StringValue": "3"},
            "dedupe_key": {"DataType": "String", "StringValue": "bk_1#booking_confirmed#0"},
            "first_dead_lettered_at": {"DataType": "String", "StringValue": "2026-11-29T10:00:00Z"},
            "phone": {"DataType": "String", "StringValue": PHONE_LIKE},
        }
    )
    assert read == {
        "attempts": 3,
        "dedupe_key": "bk_1#booking_confirmed#0",
        "first_dead_lettered_at": "2026-11-29T10:00:00Z",
    }
