"""The rounds of a read, decide and write loop (``ownership.rounds``)."""

from __future__ import annotations

from booking_durability.reservations.ownership import rounds


def test_a_round_after_a_lost_race_comes_after_a_pause_told_which_round_lost() -> None:
    pauses: list[int] = []
    assert list(rounds(3, pauses.append)) == [0, 1, 2]
    # Between rounds only: no pause before the first, none after the last
    assert pauses == [0, 1]


def test_a_loop_that_lands_at_once_never_pauses() -> None:
    pauses: list[int] = []
    for round_ in rounds(12, pauses.append):
        assert round_ == 0
        break
    assert pauses == []
