"""SMTP relay (the local mail sink, or any submission server): one connection per send.

SMTP has no idempotency key. Every message carries ``Message-ID: <sha256(dedupe key)@booking.local>``
(docs/reference/queue-message.md#message-headers), which lets a receiver that honours it (the local sink does)
drop a repeat; beyond that, deduplication relies on our DynamoDB claim, as with SES.

smtplib's exceptions carry the recipient and the server's reply text (which can echo it): they
are translated here and never raised or chained.
"""

from __future__ import annotations

import smtplib
import ssl
from datetime import UTC, datetime
from email.errors import MessageError
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr

from booking_durability.emails.providers.base import (
    OutgoingEmail,
    PermanentProviderError,
    ProviderError,
    ProviderThrottled,
    TransientProviderError,
)

# "Authentication required/failed" replies hit every email alike: retry and alarm, like 401/403.
_AUTH_REPLIES = frozenset({530, 534, 535, 538})


def classify_smtp_reply(provider: str, code: int | None) -> ProviderError:
    """Map an SMTP reply code to the consumer's outcome: 421 throttled, 4xx transient, 5xx permanent."""
    if code == 421:
        return ProviderThrottled(provider, code, retry_after=None)
    if code is not None and 500 <= code < 600 and code not in _AUTH_REPLIES:
        return PermanentProviderError(provider, code, "refused")
    if code is not None and 400 <= code < 500:
        return TransientProviderError(provider, code, "try again later")
    return TransientProviderError(provider, code, "unexpected reply")


def build_message(email: OutgoingEmail, sent_at: datetime | None = None) -> EmailMessage:
    """The MIME message (multipart/alternative text + HTML) with the headers of
    docs/reference/queue-message.md#message-headers."""
    message = EmailMessage()
    message["From"] = email.sender
    message["To"] = Address(display_name=email.to_name or "", addr_spec=email.to_email)
    message["Subject"] = email.subject
    message["Date"] = format_datetime(sent_at or datetime.now(UTC))
    message["Message-ID"] = email.message_id
    for name, value in email.headers.items():
        message[name] = value
    message.set_content(email.text)
    message.add_alternative(email.html, subtype="html")
    return message


class SmtpProvider:
    """Sends over SMTP, with STARTTLS and login when configured."""

    name: str = "smtp"

    def __init__(
        self,
        host: str,
        port: int,
        *,
        starttls: bool = False,
        username: str | None = None,
        password: str | None = None,
        timeout_seconds: float = 10.0,
        local_hostname: str | None = None,
    ) -> None:
        self._host = host
        self._port = port
        self._starttls = starttls
        self._username = username
        self._password = password
        self._timeout_seconds = timeout_seconds
        self._local_hostname = local_hostname

    def __repr__(self) -> str:
        return f"SmtpProvider(host={self._host!r}, port={self._port}, starttls={self._starttls})"

    def send(self, email: OutgoingEmail) -> str:
        """Send once; return the Message-ID (SMTP gives no provider id we can rely on)."""
        built = self._build(email)
        failure = built if isinstance(built, ProviderError) else self._deliver(email, built)
        if failure is not None:
            # Raised outside any ``except`` block, so no smtplib/email error rides along.
            raise failure
        return email.message_id

    def _build(self, email: OutgoingEmail) -> EmailMessage | ProviderError:
        try:
            return build_message(email)
        except (ValueError, TypeError, MessageError):
            # A header that cannot be encoded (e.g. a line break in the name) fails every time.
            return PermanentProviderError(self.name, None, "message could not be built")

    def _helo_name(self, email: OutgoingEmail) -> str:
        # smtplib's default (socket.getfqdn) does reverse DNS, which can stall a sandboxed Lambda.
        if self._local_hostname:
            return self._local_hostname
        _, _, domain = parseaddr(email.sender)[1].rpartition("@")
        return domain or "localhost"

    def _deliver(self, email: OutgoingEmail, message: EmailMessage) -> ProviderError | None:
        smtp = smtplib.SMTP(local_hostname=self._helo_name(email), timeout=self._timeout_seconds)
        sent = False
        try:
            smtp.connect(self._host, self._port)
            if self._starttls:
                smtp.starttls(context=ssl.create_default_context())
            if self._username:
                smtp.login(self._username, self._password or "")
            smtp.send_message(message, from_addr=parseaddr(email.sender)[1], to_addrs=[email.to_email])
            sent = True
        except smtplib.SMTPRecipientsRefused as error:
            codes = [reply[0] for reply in error.recipients.values()]
            return classify_smtp_reply(self.name, codes[0] if codes else None)
        except smtplib.SMTPAuthenticationError as error:
            return TransientProviderError(self.name, error.smtp_code, "credentials refused")
        except (smtplib.SMTPConnectError, smtplib.SMTPHeloError) as error:
            # Refused before any message was named: it refuses every email alike.
            if error.smtp_code == 421:
                return ProviderThrottled(self.name, 421, retry_after=None)
            return TransientProviderError(self.name, error.smtp_code, "session refused")
        except smtplib.SMTPResponseException as error:
            # SMTPSenderRefused and SMTPDataError among them.
            return classify_smtp_reply(self.name, error.smtp_code)
        except smtplib.SMTPNotSupportedError:
            if not email.to_email.isascii():
                return PermanentProviderError(self.name, None, "server lacks SMTPUTF8 for this address")
            return TransientProviderError(self.name, None, "server lacks a required extension")
        except (smtplib.SMTPException, OSError):
            # Disconnects, refused connections, timeouts, TLS failures.
            return TransientProviderError(self.name, None, "connection failed")
        finally:
            _hang_up(smtp, polite=sent)
        return None


def _hang_up(smtp: smtplib.SMTP, *, polite: bool) -> None:
    # After an accepted message a failing QUIT changes nothing; after a failure (maybe a
    # timeout) QUIT could wait another full timeout, so just drop the connection.
    if polite:
        try:
            smtp.quit()
            return
        except (smtplib.SMTPException, OSError):
            pass
    smtp.close()
