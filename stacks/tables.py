"""The one DynamoDB table builder: every table of the service is made here, the same way."""

from __future__ import annotations

from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct

from stacks.function import removal_policy
from stacks.settings import StageSettings


def service_table(
    scope: Construct,
    construct_id: str,
    *,
    settings: StageSettings,
    partition_key: str,
    sort_key: str,
    ttl_attribute: str,
    stream: dynamodb.StreamViewType | None = None,
) -> dynamodb.Table:
    """An on-demand table with string keys, point-in-time recovery and AWS-managed encryption.

    Items expire through ``ttl_attribute``; in a stage that retains data (prod) the table
    outlives its stack. ``stream`` adds a DynamoDB stream of that view.
    """
    return dynamodb.Table(
        scope,
        construct_id,
        partition_key=dynamodb.Attribute(name=partition_key, type=dynamodb.AttributeType.STRING),
        sort_key=dynamodb.Attribute(name=sort_key, type=dynamodb.AttributeType.STRING),
        billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
        point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
            point_in_time_recovery_enabled=True
        ),
        time_to_live_attribute=ttl_attribute,
        encryption=dynamodb.TableEncryption.AWS_MANAGED,
        stream=stream,
        removal_policy=removal_policy(settings),
    )
