"""The names of the service stack's outputs: what the stack writes, and what tools look up.

The CDK app writes each output under one of these names (``stacks/service_stack.py``,
``stacks/caller_policies.py``); the operator tools (``scripts/operations/stack_lookup.py`` and its callers)
and the tests read them by the same names. ``exported`` outputs are the ones the booking app's
stacks import, as ``<stack name>-<output>`` (docs/booking-app.md#what-the-stack-gives-you):
their names never change.

Standard library only, for the reasons ``metric_names`` gives: the CDK app imports it without
the runtime's dependencies, and the operator tools import it too.
"""

from __future__ import annotations

from enum import StrEnum


class StackOutput(StrEnum):
    """An output of the service stack; ``exported`` when other stacks import it."""

    exported: bool

    def __new__(cls, name: str, exported: bool = False) -> StackOutput:
        member = str.__new__(cls, name)
        member._value_ = name
        member.exported = exported
        return member

    API_URL = "ApiUrl", True
    EMAIL_QUEUE_URL = "EmailQueueUrl", True
    PUBLISH_EMAIL_JOBS_POLICY_ARN = "PublishEmailJobsPolicyArn", True
    API_READ_POLICY_ARN = "ApiReadPolicyArn", True
    API_CHANGE_POLICY_ARN = "ApiChangePolicyArn", True
    # What operators' tools and the local stack look up.
    EMAIL_DLQ_URL = "EmailDlqUrl"
    NOTIFICATIONS_QUEUE_URL = "NotificationsQueueUrl"
    NOTIFICATIONS_DLQ_URL = "NotificationsDlqUrl"
    NOTIFICATIONS_PIPE_DLQ_URL = "NotificationsPipeDlqUrl"
    #: Only when the stage sends through an HTTP provider.
    PROVIDER_SECRET_ARN = "ProviderSecretArn"  # noqa: S105 (a name, not a secret)
    #: Only when the stage notifies a webhook.
    WEBHOOK_SECRET_ARN = "WebhookSecretArn"  # noqa: S105 (a name, not a secret)
    DELIVERIES_TABLE_NAME = "DeliveriesTableName"
    RESERVATIONS_TABLE_NAME = "ReservationsTableName"
    EMAIL_CONSUMER_FUNCTION_NAME = "EmailConsumerFunctionName"
    ALARM_TOPIC_ARN = "AlarmTopicArn"


def route_group_policy(group: str) -> str:
    """The exported output of the managed policy that may call one route group's routes
    (``venues-admin`` -> ``ApiVenuesAdminPolicyArn``)."""
    return f"Api{''.join(part.capitalize() for part in group.split('-'))}PolicyArn"
