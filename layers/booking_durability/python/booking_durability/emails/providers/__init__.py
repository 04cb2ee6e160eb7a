"""Email providers: pick one from the settings (``EMAIL_PROVIDER``) with ``build_provider``.

Each provider module is imported only when chosen, so a cold start never pays for the
others (boto3 in particular).
"""

from __future__ import annotations

from collections.abc import Mapping

from booking_durability.emails.providers.base import (
    AlreadyDelivered,
    EmailProvider,
    OutgoingEmail,
    PermanentProviderError,
    ProviderError,
    ProviderNotConfigured,
    ProviderThrottled,
    TransientProviderError,
)
from booking_durability.settings.email_consumer import ConsumerSettings

__all__ = [
    "AlreadyDelivered",
    "EmailProvider",
    "OutgoingEmail",
    "PermanentProviderError",
    "ProviderError",
    "ProviderNotConfigured",
    "ProviderThrottled",
    "TransientProviderError",
    "build_provider",
]


def build_provider(settings: ConsumerSettings, credentials: Mapping[str, str]) -> EmailProvider:
    """The provider ``settings.email_provider`` names, with its secret's ``credentials``.

    Credential keys: resend ``api_key`` (required); smtp ``username`` and ``password``
    (optional, login only when a username is given); ses none (the function's IAM role).
    Raises ``ProviderNotConfigured`` when a required credential is missing or blank (cause
    ``no_api_key``: the key's name, never a value).
    """
    if settings.email_provider == "resend":
        from booking_durability.emails.providers.resend import ResendProvider

        api_key = credentials.get("api_key", "").strip()
        if not api_key:
            raise ProviderNotConfigured("resend", "no_api_key")
        return ResendProvider(
            api_key,
            base_url=settings.resend_base_url,
            timeout_seconds=settings.provider_timeout_seconds,
        )
    if settings.email_provider == "ses":
        from booking_durability.emails.providers.ses import SesProvider

        return SesProvider(timeout_seconds=settings.provider_timeout_seconds)
    if settings.email_provider == "smtp":
        from booking_durability.emails.providers.smtp import SmtpProvider

        return SmtpProvider(
            settings.smtp_host,
            settings.smtp_port,
            starttls=settings.smtp_starttls,
            username=credentials.get("username") or None,
            password=credentials.get("password") or None,
            timeout_seconds=settings.provider_timeout_seconds,
        )
    raise ValueError(f"unknown email provider {settings.email_provider!r}")
