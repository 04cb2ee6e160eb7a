"""The drift webhook's secret: its URL and signing keys, set by operators, read by the notifier."""

from __future__ import annotations

from aws_cdk import Acknowledgment, Validations
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from stacks.settings import StageSettings


def webhook_secret(scope: Construct, settings: StageSettings) -> secretsmanager.Secret | None:
    """Where the notifier POSTs and what it signs with, made in ``scope``: on stages whose
    webhook is configured in AWS."""
    # No webhook: nothing to sign. The local stage's loopback sink is configured by the
    # environment instead.
    if not settings.notifications.webhook_secret_in_aws:
        return None
    secret = secretsmanager.Secret(
        scope,
        "WebhookSecret",
        description=(
            f"Where the drift notifier ({settings.name}) POSTs and what it signs with: a JSON "
            'object {"url": "https://...", "secret": "whsec_<base64>"}, plus "previous": the '
            "replaced key, for the 24 h of a rotation. The URL may carry the receiver's token. Set "
            "by operators with `aws secretsmanager put-secret-value`; never in code."
        ),
    )
    Validations.of(secret).acknowledge(
        Acknowledgment(
            id="AwsSolutions-SMG4",
            reason=(
                "The secret is the webhook's URL and signing key, shared with the receiver's "
                "owner, who must install every new key on their side; no Lambda rotation could "
                "do that. Operators rotate it with the receiver (the new key with the old one as "
                "previous for 24 h, during which the notifier signs with both: docs/runbook.md), "
                "and the notifier picks up each value when its cached copy expires."
            ),
        )
    )
    return secret
