"""The consumers' guard around one record: an unexpected failure is retried, logged by type only."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from booking_durability.observability import logger
from booking_durability.retry import RetryLater, unexpected_failures_retried
from tests.unit.notifications.builders import SECRET


@pytest.fixture
def logged() -> Iterator[io.StringIO]:
    buffer = io.StringIO()
    handlers = [h for h in logger.handlers if isinstance(h, logging.StreamHandler)]
    previous = [(h, h.setStream(buffer)) for h in handlers]
    yield buffer
    for handler, stream in previous:
        handler.setStream(stream)


def test_an_unexpected_failure_becomes_a_retry_logged_by_its_type_only(logged: io.StringIO) -> None:
    with pytest.raises(RetryLater, match=r"^unexpected KeyError$"), unexpected_failures_retried("it broke"):
        raise KeyError(f"https://hooks.example.test/{SECRET}")
    [line] = [json.loads(text) for text in logged.getvalue().splitlines()]
    assert (line["message"], line["error_type"], line["level"]) == ("it broke", "KeyError", "ERROR")
    assert SECRET not in logged.getvalue()


def test_a_retry_passes_through_unchanged_and_a_result_is_returned(logged: io.StringIO) -> None:
    asked = RetryLater("queue send failed")
    with pytest.raises(RetryLater) as raised, unexpected_failures_retried("it broke"):
        raise asked
    assert raised.value is asked

    def handled() -> str:
        with unexpected_failures_retried("it broke"):
            return "sent"

    assert handled() == "sent"
    assert logged.getvalue() == ""
