"""The TypeScript client against the local stack, as the booking app runs it: a venue put, a hold
confirmed after a policy change, a booking read, problems typed by code, an email sent through the
API and one published straight to SQS, both read back `sent` (clients/typescript/e2e)."""

from __future__ import annotations

import uuid

import pytest

from tests.typescript import built, environment_without_aws, node_tests

from .harness import RunningStack

pytestmark = pytest.mark.e2e


def test_the_typescript_client_books_a_table_and_sends_emails_on_the_local_stack(
    running_stack: RunningStack,
) -> None:
    # Given the client built, and this run's ids and a guest address planted to look for
    run = uuid.uuid4().hex[:12]
    recipient = f"ts-client-{run}@example.test"
    stack = running_stack.stack_json()
    environment = environment_without_aws(
        BOOKING_DURABILITY_STACK_JSON=str(running_stack.stack_file),
        E2E_RUN_ID=run,
        E2E_RECIPIENT=recipient,
        # What the AWS SDK for JavaScript needs for the local stack: dummy credentials, the
        # region, and the SQS endpoint (the service-specific endpoint variable)
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_REGION=stack["region"],
        AWS_ENDPOINT_URL_SQS=stack["aws_endpoint_url"],
    )
    # When its e2e test runs against the stack
    ran = node_tests([built() / "e2e" / "local-stack.test.js"], env=environment)
    # Then every step passed
    assert ran.returncode == 0, ran.stdout[-8000:] + ran.stderr
    assert "# fail 0" in ran.stdout
    assert "# pass 3" in ran.stdout
    # And both emails reached the Maildir once, through the consumer
    for booking_id in (f"{run}_http", f"{run}_sqs"):
        [message] = running_stack.delivered_with(f"{booking_id}#booking_confirmed#0")
        assert message["Delivered-To"] == recipient
    # And the guest's address appears in no log line of the stack
    assert recipient not in running_stack.output()
