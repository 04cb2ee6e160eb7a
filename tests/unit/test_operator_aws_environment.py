"""Which region the operator scripts' AWS clients use: ``AWS_REGION`` first, then
``AWS_DEFAULT_REGION``, then the profile's, as the AWS CLI reads them (the runbook tells operators
to set ``AWS_REGION``; botocore alone reads only ``AWS_DEFAULT_REGION``). The local stack's
clients take its own region and endpoint, whatever the shell says."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from booking_durability.adapters import aws
from operations import dead_letter_queues, hold_migration
from operations.dead_letters import QueueKind
from operations.stack_lookup import local_stack

QUEUE, DLQ = "https://sqs.eu-south-2.amazonaws.com/1/q", "https://sqs.eu-south-2.amazonaws.com/1/dlq"


@pytest.fixture(autouse=True)
def bare_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No region anywhere, an empty AWS config file, dummy credentials: each test adds its own."""
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    config = tmp_path / "aws-config"
    config.write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    # No AWS answers here: the import tools' check that their table exists is left out, the
    # client it would ask is what these tests look at.
    monkeypatch.setattr(hold_migration, "_answering", lambda found, where: found)
    return config


#: Every way an operator script makes a client for the deployed stack.
OPERATOR_CLIENTS: dict[str, Callable[[], Any]] = {
    "aws.client": lambda: aws.client("sqs"),
    "dlq.py --aws": lambda: (
        dead_letter_queues.locate_in_aws(
            QueueKind.EMAIL, stack_name="BookingDurability-prod", queue_url=QUEUE, dlq_url=DLQ
        ).client
    ),
    "import_holds.py / backfill_hold_metadata.py --aws": lambda: (
        hold_migration.locate_in_aws("reservations", "BookingDurability-prod").table.client
    ),
}


@pytest.mark.parametrize("make_client", OPERATOR_CLIENTS.values(), ids=OPERATOR_CLIENTS.keys())
def test_aws_region_names_the_region(monkeypatch: pytest.MonkeyPatch, make_client: Callable[[], Any]) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-south-2")
    assert make_client().meta.region_name == "eu-south-2"


@pytest.mark.parametrize("make_client", OPERATOR_CLIENTS.values(), ids=OPERATOR_CLIENTS.keys())
def test_aws_region_wins_over_aws_default_region(
    monkeypatch: pytest.MonkeyPatch, make_client: Callable[[], Any]
) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-south-2")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    assert make_client().meta.region_name == "eu-south-2"


def test_aws_default_region_alone_still_names_the_region(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    assert aws.client("sqs").meta.region_name == "us-east-1"


def test_with_neither_the_profile_names_the_region(
    monkeypatch: pytest.MonkeyPatch, bare_environment: Path
) -> None:
    bare_environment.write_text("[profile ops]\nregion = ap-southeast-2\n")
    monkeypatch.setenv("AWS_PROFILE", "ops")
    assert aws.client("sqs").meta.region_name == "ap-southeast-2"


def test_the_local_stack_keeps_its_own_region_and_endpoint(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Given an operator's shell set up for a deployed stack
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "https://sqs.us-east-1.amazonaws.com")
    stack = tmp_path / "stack.json"
    stack.write_text(
        json.dumps(
            {"aws_endpoint_url": "http://127.0.0.1:4566", "region": "eu-west-1", "queues": {"email": "E"}}
        )
    )
    # When a script finds the local stack's queue
    url, client = local_stack(stack, "sqs", lambda s: s["queues"]["email"])
    # Then its client talks to the local moto server in the local region
    assert url == "E"
    assert client.meta.region_name == "eu-west-1"
    assert client.meta.endpoint_url == "http://127.0.0.1:4566"
