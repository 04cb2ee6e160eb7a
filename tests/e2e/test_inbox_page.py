"""The local inbox page (docs/reference/local-stack.md#inbox-page) as a developer meets it, in headless
Chromium: what guests and the admin received, the dead letters by reason and the webhook deliveries, on
loopback only.

Chromium is Debian's (``make browser`` installs it); Playwright drives it through
``executable_path``, as Playwright's own browser download does not work here.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from booking_durability.emails.models import message_id_for
from devstack.inbox import is_loopback_host
from tests.builders import venue_config

from .harness import RunningStack, eventually
from .test_drift_flows import hold, webhooks_for
from .test_local_stack import booking_confirmed, publish

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make browser` installs Debian's chromium")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    yield context.new_page()
    context.close()


def dead_letter_id(stack: RunningStack, job_id: str) -> str | None:
    """The email DLQ's message id of the letter carrying ``job_id``, looked at and left visible."""
    sqs = stack.sqs()
    received = sqs.receive_message(
        QueueUrl=stack.stack_json()["queues"]["email_dlq"], MaxNumberOfMessages=10, VisibilityTimeout=0
    ).get("Messages", [])
    return next((m["MessageId"] for m in received if json.loads(m["Body"])["job_id"] == job_id), None)


def drift_webhook(stack: RunningStack) -> dict[str, Any]:
    """A policy change between a hold and its confirmation: the admin's webhook delivery."""
    venue_id = f"v-{uuid.uuid4().hex[:10]}"
    stack.api("PUT", f"/v1/venues/{venue_id}", json=venue_config(buffer_minutes=10))
    held = hold(stack, venue_id)
    stack.api("PUT", f"/v1/venues/{venue_id}", json=venue_config(buffer_minutes=30))
    status, _, _ = stack.api(
        "POST", f"/v1/holds/{held['hold_id']}/confirm", json={"booking_id": f"bk_{uuid.uuid4().hex[:8]}"}
    )
    assert status == 200
    [delivery] = eventually(lambda: webhooks_for(stack, held["hold_id"]), what="the drift webhook")
    return delivery


def test_the_inbox_lists_a_delivered_email_and_shows_it_rendered_with_dead_letters_and_webhooks(
    running_stack: RunningStack, page: Page
) -> None:
    # Given an email to a guest of a restaurant with a name of its own, delivered
    restaurant = f"Casa {uuid.uuid4().hex[:6]}"
    request = booking_confirmed(f"guest-{uuid.uuid4().hex[:8]}@example.test")
    request["data"]["restaurant_name"] = restaurant
    delivered = publish(running_stack, request)
    eventually(lambda: running_stack.delivered_with(delivered.dedupe_key), what="the email in the Maildir")
    # And one the provider refuses for good, dead-lettered
    refused = publish(running_stack, booking_confirmed("guest+permanent@example.test"))
    letter_id = eventually(
        lambda: dead_letter_id(running_stack, refused.job_id), timeout=30, what="the refused email in the DLQ"
    )
    # And a drift webhook the admin received
    webhook = drift_webhook(running_stack)

    # When a developer opens the inbox page
    page.goto(running_stack.inbox_url)

    # Then it lists the email: its dedupe key, type and locale
    row = page.locator("tr.email", has_text=delivered.dedupe_key)
    expect(row).to_have_count(1)
    expect(row.locator("td.type")).to_have_text("booking_confirmed")
    expect(row.locator("td.locale")).to_have_text("en")
    # And the dead letter, by its attributes only: the reason, never the body's address
    dead_letter = page.locator("#dlq-email tr.dead-letter", has_text=letter_id)
    expect(dead_letter.locator("td.failure-reason")).to_have_text("provider_rejected")
    expect(dead_letter.locator("td.type")).to_have_text("booking_confirmed")
    expect(page.locator("#dead-letters")).not_to_contain_text("guest+permanent")
    # And the webhook delivery: its webhook-id and its event's type
    delivery = page.locator("tr.webhook", has_text=webhook["headers"]["webhook-id"])
    expect(delivery.locator("td.event-type")).to_have_text("policy_drift.recovered")

    # When they click into the email
    row.get_by_role("link", name=delivered.dedupe_key).click()

    # Then its HTML part shows rendered, in a fully sandboxed frame
    frame = page.locator("iframe")
    expect(frame).to_have_attribute("sandbox", "")
    expect(page.frame_locator("iframe").locator("h1")).to_have_text("Your booking is confirmed")
    expect(page.frame_locator("iframe").locator("body")).to_contain_text(restaurant)
    # And its text part too, with its headers
    expect(page.locator("pre.text")).to_contain_text(f"Restaurant: {restaurant}")
    expect(page.locator("table.headers")).to_contain_text(message_id_for(delivered.dedupe_key))

    # And the DLQ was only looked at: the letter is still there for the operator's tool
    assert dead_letter_id(running_stack, refused.job_id) == letter_id


def test_an_emails_html_is_served_under_a_policy_that_runs_nothing_and_loads_nothing(
    running_stack: RunningStack, page: Page
) -> None:
    # Given a delivered email, and its page in the inbox
    published = publish(running_stack, booking_confirmed(f"guest-{uuid.uuid4().hex[:8]}@example.test"))
    eventually(lambda: running_stack.delivered_with(published.dedupe_key), what="the email in the Maildir")
    page.goto(running_stack.inbox_url)
    page.get_by_role("link", name=published.dedupe_key).click()
    html_url = page.locator("iframe").get_attribute("src")
    assert html_url is not None

    # When its HTML part is fetched on its own
    response = httpx.get(page.url.split("/messages/")[0] + html_url)

    # Then no script runs and nothing remote loads, even opened outside the frame
    policy = response.headers["content-security-policy"]
    assert "default-src 'none'" in policy
    assert "sandbox" in policy.split(";")[-1]
    assert "script-src" not in policy
    assert response.headers["x-content-type-options"] == "nosniff"


def test_the_inbox_serves_loopback_names_only(running_stack: RunningStack) -> None:
    # Given the inbox, listening on loopback
    url = running_stack.inbox_url
    assert url.startswith("http://127.0.0.1:")
    port = url.rstrip("/").rsplit(":", 1)[1]

    # When a page on another domain, re-bound to 127.0.0.1, asks it (DNS rebinding)
    rebound = httpx.get(url, headers={"Host": f"attacker.example:{port}"})

    # Then it is refused; loopback names are answered
    assert rebound.status_code == 403
    assert "email" not in rebound.text.lower()
    assert httpx.get(url, headers={"Host": f"localhost:{port}"}).status_code == 200
    assert httpx.get(url).status_code == 200


@pytest.mark.parametrize(
    ("host", "answered"),
    [
        ("127.0.0.1:8026", True),
        ("localhost:8026", True),
        ("[::1]:8026", True),
        ("attacker.example:8026", False),
        ("127.0.0.1.attacker.example", False),
        ("attacker@127.0.0.1", False),
        ("", False),
        (None, False),
    ],
)
def test_only_a_loopback_host_header_is_answered(host: str | None, answered: bool) -> None:
    assert is_loopback_host(host) is answered
