"""``RetryLater``: a queue consumer's way to leave one record to SQS for another delivery.

Raised from a record's handling, it fails only that record in the batch's partial response;
SQS delivers it again after the visibility timeout. Shared by the email consumer and the drift
notifier, and kept free of either's imports so that neither loads the other's.
"""

from __future__ import annotations


class RetryLater(Exception):
    """SQS should deliver this message again (the batch's partial response)."""
