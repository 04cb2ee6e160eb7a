"""Provider credentials from Secrets Manager, through Powertools parameters (cached)."""

from __future__ import annotations

from collections.abc import Mapping

# Rotated credentials reach warm functions within this many seconds.
CACHE_SECONDS = 300


def provider_credentials(secret_arn: str | None) -> Mapping[str, str]:
    """The provider secret's JSON object; empty when the stage has no secret (local SMTP)."""
    if not secret_arn:
        return {}
    from aws_lambda_powertools.utilities import parameters

    value = parameters.get_secret(secret_arn, transform="json", max_age=CACHE_SECONDS)
    if not isinstance(value, dict):
        raise ValueError("provider secret must be a JSON object")
    return {str(k): str(v) for k, v in value.items()}
