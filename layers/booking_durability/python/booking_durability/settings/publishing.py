"""What anything publishing email jobs reads: the email queue."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from booking_durability.settings import Settings


class ProducerSettings(Settings):
    """What anything publishing email jobs needs (API, notifier, scripts)."""

    email_queue_url: str
    max_delay_hop_seconds: Annotated[int, Field(ge=1, le=900)] = 900
