"""`make demo`: a short scenario against the running local stack, each step with where to see it.

    make run                            # in one terminal
    .venv/bin/python scripts/demo.py    # in another (what `make demo` runs)

It talks to the stack as the booking app does, over the HTTP API (httpx) and SQS (boto3), and
finds it through ``$LOCAL_DIR/stack.json`` (``.local`` by default):

1. an email sent: ``POST /v1/emails``, then the message in the Maildir;
2. a duplicate suppressed: the same email posted again (answered ``sent``, not queued again),
   and the same job put straight on the email queue (the consumer acknowledges it as a
   duplicate: still one copy delivered);
3. a retry: a ``+transient1`` recipient, refused once with 451, delivered on the retry;
4. a dead letter: a ``+permanent`` recipient, refused with 550 and dead-lettered at once with
   ``failure_reason`` ``provider_rejected`` (looked at without consuming it, as
   ``scripts/dlq.py inspect`` does), and counted in the ``EmailDeadLettered`` metric
   (``metrics.jsonl``);
5. a hold confirmed after a policy change: a venue, a hold, the venue's policy changed, the hold
   confirmed anyway (``policy_drift`` recovered), and the signed webhook the admin gets.

Every path it prints comes from ``stack.json``, so from the stack's ``LOCAL_DIR``. It prints no
address. Every wait is bounded. Exit status: 0 every step happened; 1 one did not
(the message says which, and the stack's own log says why); 2 no local stack is running.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.parser import BytesHeaderParser
from email.policy import default as default_policy
from pathlib import Path
from typing import Any, TextIO, TypeVar
from urllib.parse import quote

import boto3
import httpx
from standardwebhooks import Webhook, WebhookVerificationError

from booking_durability.adapters.email_queue import EmailQueue
from booking_durability.emails.models import message_id_for
from booking_durability.emails.producer import publish_email
from operations.dead_letter_queues import SqsDeadLetterQueue, locate_local
from operations.dead_letters import DeadLetter, QueueKind
from operations.selection import Selection
from operations.sweep import sweep

ROOT = Path(__file__).resolve().parent.parent
EXIT_OK, EXIT_FAILED, EXIT_NO_STACK = 0, 1, 2
#: Past the local stage's retries (backoff base at most 2 s, visibility timeouts at most 60 s).
DELIVERY_TIMEOUT_SECONDS = 60.0
HTTP_TIMEOUT_SECONDS = 40.0
#: The local stage hops at most 5 s at a time (docs/reference/local-stack.md#quick-retries).
LOCAL_HOP_SECONDS = 5
# moto takes any credentials; explicit dummies keep real ones out of a local run.
MOTO_CREDENTIALS = {"aws_access_key_id": "local", "aws_secret_access_key": "local"}

_T = TypeVar("_T")


class StepFailed(Exception):
    """A step did not happen (in time); the message says what was expected."""


@dataclass(frozen=True)
class Stack:
    """What the demo needs of ``stack.json``."""

    local_dir: Path
    description: dict[str, Any]

    @property
    def api_url(self) -> str:
        return str(self.description["api_url"])

    @property
    def inbox_url(self) -> str:
        return str(self.description.get("inbox_url") or "")

    @property
    def stack_file(self) -> Path:
        return self.local_dir / "stack.json"

    def path(self, name: str) -> Path:
        return Path(self.description[name])

    def sqs(self) -> Any:
        session = boto3.session.Session(**MOTO_CREDENTIALS, region_name=self.description["region"])
        return session.client("sqs", endpoint_url=self.description["aws_endpoint_url"])


def find_stack(env: dict[str, str]) -> Stack | None:
    local_dir = ROOT / env.get("LOCAL_DIR", ".local")  # an absolute LOCAL_DIR stays as it is
    try:
        description = json.loads((local_dir / "stack.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    # A stack without an API cannot run the demo.
    return (
        Stack(local_dir, description) if isinstance(description, dict) and "api_url" in description else None
    )


def wait_for(check: Callable[[], _T | None], timeout: float, what: str) -> _T:
    """Poll ``check`` until it returns something; :class:`StepFailed` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise StepFailed(f"{what} did not happen within {timeout:.0f} s")
        time.sleep(0.25)


def shown(path: Path) -> str:
    """``path`` relative to the repository when it is inside it (``.local/...``), else as it is."""
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


class Demo:
    """The five steps, one method each; each prints what happened and where to see it."""

    def __init__(self, stack: Stack, out: TextIO) -> None:
        self.stack = stack
        self.out = out
        self.http = httpx.Client(base_url=stack.api_url, timeout=HTTP_TIMEOUT_SECONDS)
        self.run_id = uuid.uuid4().hex[:8]
        #: The email of step 1, sent again in step 2.
        self.first = self.email_request("guest@example.test", "sent")

    def say(self, text: str = "") -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def run(self) -> int:
        inbox = f", inbox {self.stack.inbox_url}" if self.stack.inbox_url else ""
        self.say(
            f"demo against the local stack in {shown(self.stack.local_dir)}: API {self.stack.api_url}{inbox}"
        )
        steps = [
            ("an email sent", self.email_sent),
            ("a duplicate suppressed", self.duplicate_suppressed),
            ("a retry", self.retry),
            ("a dead letter", self.dead_letter),
            ("a hold confirmed after a policy change", self.hold_confirmed_after_a_policy_change),
        ]
        for number, (title, step) in enumerate(steps, start=1):
            self.say()
            self.say(f"{number}. {title}")
            try:
                step()
            except (StepFailed, httpx.HTTPError) as exc:
                self.say(f"   FAILED: {exc}")
                self.say("   the stack's log (`make run`'s terminal) says why")
                return EXIT_FAILED
        self.say()
        self.say(f"done: {len(steps)} of {len(steps)} steps happened")
        return EXIT_OK

    # -- the steps --------------------------------------------------------------------------------

    def email_sent(self) -> None:
        accepted = self.post_email(self.first)
        started = time.monotonic()
        delivered = self.wait_delivered(accepted["dedupe_key"])
        self.say(
            f"   booking_confirmed {accepted['dedupe_key']}: POST /v1/emails -> 202 {accepted['status']}, "
            f"delivered {time.monotonic() - started:.1f} s later"
        )
        self.where(delivered)

    def duplicate_suppressed(self) -> None:
        again = self.post_email(self.first)
        if again["status"] != "sent":
            raise StepFailed(f"the same email posted again was answered {again['status']!r}, not 'sent'")
        self.say(
            f"   the same email posted again: POST /v1/emails -> 202 {again['status']}, not queued again"
        )
        # The booking app may also publish one job twice: the consumer's ledger stops the second.
        # A duplicate leaves no trace but a log line, so a fresh job goes right behind it: the
        # worker takes the oldest messages first, so once that one is delivered, the duplicate
        # has been handled.
        queue = EmailQueue(self.stack.description["queues"]["email"], self.stack.sqs())
        published = publish_email(self.first, queue=queue, max_hop_seconds=LOCAL_HOP_SECONDS)
        behind = publish_email(
            self.email_request("guest@example.test", "behind"), queue=queue, max_hop_seconds=LOCAL_HOP_SECONDS
        )
        self.wait_delivered(behind.dedupe_key)
        copies = self.delivered(published.dedupe_key)
        message_id = message_id_for(published.dedupe_key)
        stored = [e for e in self.mail_log() if e.get("message_id") == message_id and e.get("stored")]
        if len(copies) != 1 or len(stored) != 1:
            raise StepFailed(f"{len(copies)} copies of {published.dedupe_key} delivered, not 1")
        self.say(
            f"   the same job put straight on the email queue (job {published.job_id}): "
            f"the consumer acknowledged it as a duplicate ({behind.dedupe_key}, published right "
            "behind it, has been delivered since), still one copy delivered"
        )
        self.say(
            f"   see: {shown(self.stack.path('mail_log'))}: one message stored for {message_id}; "
            "in `make run`'s log, "
            'email_worker | {..."message":"email already sent; duplicate acknowledged"...}'
        )

    def retry(self) -> None:
        accepted = self.post_email(self.email_request("guest+transient1@example.test", "retry"))
        delivered = self.wait_delivered(accepted["dedupe_key"])
        message_id = message_id_for(accepted["dedupe_key"])
        codes = [entry["code"] for entry in self.mail_log() if entry.get("message_id") == message_id]
        if codes[:1] != [451]:
            raise StepFailed(f"expected a first attempt refused with 451, the mail log says {codes}")
        self.say(
            f"   {accepted['dedupe_key']} to a +transient1 recipient: SMTP answered "
            f"{' then '.join(str(code) for code in codes)}: refused once, delivered on the retry"
        )
        self.where(delivered, mail_log=True)

    def dead_letter(self) -> None:
        counted_before = self.dead_letterings_counted("provider_rejected")
        accepted = self.post_email(self.email_request("guest+permanent@example.test", "dead"))
        dlq = locate_local(self.stack.stack_file, QueueKind.EMAIL, wait_seconds=0)
        letter = wait_for(
            lambda: self.dead_letter_of(dlq, accepted["job_id"]),
            DELIVERY_TIMEOUT_SECONDS,
            f"{accepted['dedupe_key']} reaching the email DLQ",
        )
        if letter.failure_reason != "provider_rejected":
            raise StepFailed(f"dead-lettered with {letter.failure_reason}, not provider_rejected")
        wait_for(
            lambda: self.dead_letterings_counted("provider_rejected") > counted_before,
            DELIVERY_TIMEOUT_SECONDS,
            "the EmailDeadLettered metric",
        )
        message_id = message_id_for(accepted["dedupe_key"])
        codes = [entry["code"] for entry in self.mail_log() if entry.get("message_id") == message_id]
        self.say(
            f"   {accepted['dedupe_key']} to a +permanent recipient: SMTP answered "
            f"{', '.join(str(code) for code in codes)}; dead-lettered at once with failure_reason "
            f"{letter.failure_reason} (email DLQ message {letter.message_id})"
        )
        inbox = (
            f", the inbox's dead letters ({self.stack.inbox_url}#dead-letters)"
            if self.stack.inbox_url
            else ""
        )
        tool = ".venv/bin/python scripts/dlq.py"
        self.say(f"   see: {tool} inspect --list --message-id {letter.message_id}{inbox}")
        self.say(
            f"        {shown(self.stack.path('metrics_file'))}: EmailDeadLettered with failure_reason "
            "provider_rejected, as CloudWatch would count it"
        )
        self.say(
            "   provider_rejected is permanent: a redrive moves it only with --force, once the cause "
            "is fixed (docs/runbook.md, Refused by the provider)"
        )

    def hold_confirmed_after_a_policy_change(self) -> None:
        down = self.stack.path("webhooks_file").parent / "webhook-down"
        if down.exists():
            raise StepFailed(f"{shown(down)} exists: the webhook sink answers 503 until it is removed")
        venue_id = f"demo-{self.run_id}"
        venue = self.call("PUT", f"/v1/venues/{venue_id}", 200, json=venue_config(buffer_minutes=10))
        starts_at = (datetime.now(UTC) + timedelta(days=2)).replace(
            hour=20, minute=0, second=0, microsecond=0
        )
        held = self.call(
            "POST",
            "/v1/holds",
            201,
            json={
                "venue_id": venue_id,
                "party_size": 2,
                "starts_at": starts_at.isoformat().replace("+00:00", "Z"),
            },
        )
        self.say(
            f"   venue {venue_id} (policy version {venue['policy_version']}); hold {held['hold_id']} "
            f"on {', '.join(held['table_ids'])}"
        )
        changed = self.call("PUT", f"/v1/venues/{venue_id}", 200, json=venue_config(buffer_minutes=30))
        self.say(
            f"   the venue's buffer changed from 10 to 30 minutes: policy version {changed['policy_version']}"
        )
        confirmed = self.call(
            "POST", f"/v1/holds/{held['hold_id']}/confirm", 200, json={"booking_id": f"bk_demo_{self.run_id}"}
        )
        drift = confirmed.get("policy_drift") or {}
        if drift.get("original_hold_id") != held["hold_id"]:
            raise StepFailed(f"the confirmation says no policy drift: {confirmed.get('policy_drift')}")
        self.say(
            f"   POST /v1/holds/{held['hold_id']}/confirm -> 200: booking {confirmed['booking_id']} on "
            f"replacement hold {confirmed['hold_id']}, quoted again under version {changed['policy_version']}"
        )
        delivery = wait_for(
            lambda: self.webhook_about(held["hold_id"]), DELIVERY_TIMEOUT_SECONDS, "the admin's drift webhook"
        )
        event = json.loads(delivery["body"])
        self.say(
            f"   the admin was notified: {event['type']} webhook {delivery['headers'].get('webhook-id')}, "
            f"{self.signature(delivery)}"
        )
        inbox = f", the inbox's webhooks ({self.stack.inbox_url}#webhooks)" if self.stack.inbox_url else ""
        self.say(f"   see: {shown(self.stack.path('webhooks_file'))}{inbox}")
        self.say(f"   a receiver outage: touch {shown(down)} (503 to every webhook) and rm it again")

    # -- helpers ----------------------------------------------------------------------------------

    def email_request(self, recipient: str, tag: str) -> dict[str, Any]:
        starts_at = (datetime.now(UTC) + timedelta(days=3)).replace(minute=0, second=0, microsecond=0)
        return {
            "booking_id": f"demo_{self.run_id}_{tag}",
            "email_type": "booking_confirmed",
            "recipient": {"email": recipient, "name": "Ana"},
            "locale": "en",
            "time_zone": "Europe/Madrid",
            "data": {
                "restaurant_name": "Casa Lucio",
                "party_size": 2,
                "starts_at": starts_at.isoformat().replace("+00:00", "Z"),
                "reference": f"R-{self.run_id.upper()}",
            },
        }

    def call(self, method: str, path: str, expected: int, **kwargs: Any) -> dict[str, Any]:
        response = self.http.request(method, path, **kwargs)
        if response.status_code != expected:
            code = _problem_code(response)
            raise StepFailed(f"{method} {path} answered {response.status_code}{code}, not {expected}")
        body: dict[str, Any] = response.json()
        return body

    def post_email(self, request: dict[str, Any]) -> dict[str, Any]:
        return self.call("POST", "/v1/emails", 202, json=request)

    def delivered(self, dedupe_key: str) -> list[Path]:
        maildir = self.stack.path("maildir")
        found = []
        for path in sorted([*maildir.glob("new/*"), *maildir.glob("cur/*")]):
            with path.open("rb") as file:
                headers = BytesHeaderParser(policy=default_policy).parse(file)
            if headers["X-Dedupe-Key"] == dedupe_key:
                found.append(path)
        return found

    def wait_delivered(self, dedupe_key: str) -> Path:
        found = wait_for(
            lambda: self.delivered(dedupe_key), DELIVERY_TIMEOUT_SECONDS, f"{dedupe_key} in the Maildir"
        )
        return found[0]

    def where(self, delivered: Path, *, mail_log: bool = False) -> None:
        self.say(f"   see: {shown(delivered)}")
        if mail_log:
            self.say(f"        {shown(self.stack.path('mail_log'))} (one line per SMTP transaction)")
        if self.stack.inbox_url:
            self.say(f"        {self.stack.inbox_url.rstrip('/')}/messages/{quote(delivered.name, safe='')}")

    def dead_letterings_counted(self, reason: str) -> int:
        """How many ``EmailDeadLettered`` metrics with the ``failure_reason`` the handlers emitted."""
        path = self.stack.path("metrics_file")
        lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
        blobs = [json.loads(line) for line in lines if line.strip()]
        return sum(1 for b in blobs if "EmailDeadLettered" in b and b.get("failure_reason") == reason)

    def mail_log(self) -> list[dict[str, Any]]:
        path = self.stack.path("mail_log")
        lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
        return [json.loads(line) for line in lines if line.strip()]

    def dead_letter_of(self, dlq: SqsDeadLetterQueue, job_id: str) -> DeadLetter | None:
        """The letter of ``job_id`` in ``dlq``, looked at without consuming anything."""
        looked = sweep(dlq, Selection(), datetime.now(UTC), None, hide_for=10)
        # Matched on the job id only: nothing of the body (the guest's address) is shown.
        return next((letter for letter in looked.selected if _job_id(letter.body) == job_id), None)

    def webhook_about(self, original_hold_id: str) -> dict[str, Any] | None:
        path = self.stack.path("webhooks_file")
        lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
        for line in lines:
            delivery: dict[str, Any] = json.loads(line)
            try:
                if json.loads(delivery["body"]).get("original_hold_id") == original_hold_id:
                    return delivery
            except (ValueError, AttributeError):
                continue
        return None

    def signature(self, delivery: dict[str, Any]) -> str:
        secret = self.stack.description.get("webhook_secret")
        if not secret:
            return "unsigned (no webhook secret in stack.json)"
        try:
            Webhook(secret).verify(delivery["body"], delivery["headers"])
        except WebhookVerificationError:
            return "its signature does NOT verify with stack.json's webhook_secret"
        return "its Standard Webhooks signature verified with stack.json's webhook_secret"


def venue_config(*, buffer_minutes: int) -> dict[str, Any]:
    """Three tables and a seating policy, as the README's example."""
    return {
        "tables": [
            {"id": "T1", "capacity": 2, "zone": "main", "combinable_with": ["T2"]},
            {"id": "T2", "capacity": 4, "zone": "main", "combinable_with": ["T1"]},
            {"id": "T3", "capacity": 6, "min_party": 3, "zone": "terraza"},
        ],
        "policy": {
            "slot_minutes": 15,
            "default_duration_minutes": 90,
            "buffer_minutes": buffer_minutes,
            "max_party_size": 10,
            "hold_ttl_seconds": 600,
            "allow_combinations": True,
            "bookable_zones": ["main", "terraza"],
        },
    }


def _job_id(body: str) -> str | None:
    try:
        job = json.loads(body)
    except ValueError:
        return None
    return job.get("job_id") if isinstance(job, dict) else None


def _problem_code(response: httpx.Response) -> str:
    try:
        code = response.json().get("code")
    except (ValueError, AttributeError):
        return ""
    return f" {code}" if isinstance(code, str) else ""


def main(argv: Sequence[str] | None = None) -> int:
    usage = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    usage.parse_args(argv)
    stack = find_stack(dict(os.environ))
    if stack is None:
        where = shown(ROOT / os.environ.get("LOCAL_DIR", ".local") / "stack.json")
        print(
            f"no local stack: {where} is missing; start one with `make run`, then run the demo",
            file=sys.stderr,
        )
        return EXIT_NO_STACK
    try:
        httpx.get(f"{stack.api_url}/v1/health", timeout=5).raise_for_status()
    except httpx.HTTPError:
        print(
            f"no local stack answering at {stack.api_url} ({shown(stack.stack_file)} is stale?): "
            "start one with `make run`",
            file=sys.stderr,
        )
        return EXIT_NO_STACK
    return Demo(stack, sys.stdout).run()


if __name__ == "__main__":
    raise SystemExit(main())
