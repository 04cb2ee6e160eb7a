"""The functions' boto3 clients skip botocore's own check of each request (adapters/aws.py):
what AWS refuses still fails as a ClientError, and the tests check every request themselves."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from booking_durability.adapters import aws as clients
from booking_durability.adapters.dynamodb import DynamoTable
from booking_durability.errors import StoreUnavailable
from tests.integration.conftest import RequestChecker


def test_a_request_aws_refuses_still_fails_as_a_client_error(aws: None) -> None:
    # The functions' own client, without the tests' check of each request (conftest.py)
    client = clients.client.make("dynamodb")  # type: ignore[attr-defined]
    # A request botocore's check would have stopped (a number where the model wants a string)
    with pytest.raises(ClientError):
        client.get_item(TableName="deliveries", Key={"booking_id": {"S": 5}})
    # And the adapters turn it into the store's error, as any other refusal
    with pytest.raises(StoreUnavailable):
        DynamoTable("no-such-table", client).get({"booking_id": "b-1", "email_key": "t#1"})


def test_the_tests_catch_a_request_the_api_model_refuses(aws: None) -> None:
    checker = RequestChecker(clients.client.make)  # type: ignore[attr-defined]
    client = checker("sqs")
    with pytest.raises(ClientError):
        client.send_message(QueueUrl="https://sqs.eu-west-1.amazonaws.com/123456789012/q", MessageBody=5)
    assert len(checker.invalid) == 1
    assert "SendMessage" in checker.invalid[0]
