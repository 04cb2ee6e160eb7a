"""``RetryLater``: a queue consumer's way to leave one record to SQS for another delivery.

Raised from a record's handling, it fails only that record in the batch's partial response;
SQS delivers it again after the visibility timeout. ``unexpected_failures_retried`` turns any
other exception into one. Shared by the email consumer and the drift notifier, and kept free of
either's imports so that neither loads the other's.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from booking_durability.observability import logger


class RetryLater(Exception):
    """SQS should deliver this message again (the batch's partial response)."""


@contextmanager
def unexpected_failures_retried(message: str) -> Iterator[None]:
    """A record's handling, where any exception but ``RetryLater`` is logged as ``message`` with
    its type only (its text may quote a URL, a response or a guest's data) and becomes
    ``RetryLater``: one record's bug never fails the batch, and SQS's redrive is the backstop."""
    try:
        yield
    except RetryLater:
        raise
    except Exception as exc:
        logger.error(message, extra={"error_type": type(exc).__name__})
        raise RetryLater(f"unexpected {type(exc).__name__}") from None
