"""Publish one guest email job to the local stack's email queue.

    .venv/bin/python scripts/publish_email.py --to guest@example.test
    .venv/bin/python scripts/publish_email.py --to guest+transient2@example.test --delay 12 \\
        --type booking_request_received --booking-id bk_42 --locale es --time-zone Europe/Madrid

Reads the queue URL, the AWS endpoint and the region from $LOCAL_DIR/stack.json (``LOCAL_DIR``
defaults to .local; ``--stack`` names another file), whatever the shell's AWS settings, publishes
through the service's own producer and prints the job id, dedupe key and delivery time, never
the address.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pydantic import ValidationError

from booking_durability.adapters.email_queue import EmailQueue
from booking_durability.emails.models import EmailRequest
from booking_durability.emails.producer import publish_email
from booking_durability.validation import error_locations
from operations.console import local_stack_file
from operations.stack_lookup import StackNotFound, local_stack

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--to", required=True, help="recipient address (fault tags: +transientN, +throttleN, +permanent)"
    )
    parser.add_argument("--name", help="recipient name")
    parser.add_argument("--type", default="booking_confirmed", dest="email_type")
    parser.add_argument("--booking-id", default=f"bk_{uuid.uuid4().hex[:8]}")
    parser.add_argument("--revision", type=int, default=0)
    parser.add_argument("--delay", type=int, default=None, help="delay_seconds")
    parser.add_argument("--locale", default="en")
    parser.add_argument("--time-zone", default="UTC")
    parser.add_argument(
        "--stack", type=Path, default=local_stack_file(ROOT),
        help="the local stack's stack.json (default $LOCAL_DIR/stack.json)",
    )  # fmt: skip
    args = parser.parse_args(argv)

    try:
        queue_url, sqs = local_stack(args.stack, "sqs", lambda stack: str(stack["queues"]["email"]))
    except StackNotFound as exc:
        print(exc, file=sys.stderr)
        return 2
    queue = EmailQueue(queue_url, sqs)

    starts_at = (datetime.now(UTC) + timedelta(days=3)).replace(minute=0, second=0, microsecond=0)
    data = {
        "restaurant_name": "Casa Lucio",
        "party_size": 2,
        "starts_at": starts_at.isoformat(),
        "reference": "R-LOCAL",
    }
    if args.email_type == "booking_updated":
        data["previous_starts_at"] = (starts_at - timedelta(hours=1)).isoformat()
    request = {
        "booking_id": args.booking_id,
        "email_type": args.email_type,
        "revision": args.revision,
        "recipient": {"email": args.to, **({"name": args.name} if args.name else {})},
        "locale": args.locale,
        "time_zone": args.time_zone,
        "data": data,
        **({"delay_seconds": args.delay} if args.delay is not None else {}),
    }
    try:
        # The local stage hops at most 5 s at a time (docs/reference/local-stack.md#quick-retries).
        published = publish_email(request, queue=queue, max_hop_seconds=5)
    except ValidationError as exc:
        # Where the request broke a rule, in the names the request declares: a key of --data
        # that is not one of them may be a guest's name, and reads (unknown).
        print(json.dumps({"error_locations": error_locations(exc, EmailRequest)}), file=sys.stderr)
        return 1
    print(
        json.dumps(
            {
                "job_id": published.job_id,
                "dedupe_key": published.dedupe_key,
                "deliver_at": published.deliver_at.isoformat().replace("+00:00", "Z"),
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
