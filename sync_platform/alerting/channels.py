"""Delivery channels: the log (always), e-mail over SMTP, a Slack-compatible webhook.

Channels are configured per environment by environment variables; a channel that fails
leaves the alert pending for it, and the next delivery round tries again — nothing is lost.
"""

from __future__ import annotations

import logging
import os
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any, Protocol

import httpx

log = logging.getLogger("sync_platform.alerts")

SMTP_HOST_ENV = "ALERT_SMTP_HOST"
SMTP_PORT_ENV = "ALERT_SMTP_PORT"
SMTP_USERNAME_ENV = "ALERT_SMTP_USERNAME"
SMTP_PASSWORD_ENV = "ALERT_SMTP_PASSWORD"
SMTP_SECURITY_ENV = "ALERT_SMTP_SECURITY"  # starttls (default) | ssl | none
SMTP_CA_FILE_ENV = "ALERT_SMTP_CA_FILE"
EMAIL_FROM_ENV = "ALERT_EMAIL_FROM"
EMAIL_TO_ENV = "ALERT_EMAIL_TO"
SLACK_WEBHOOK_ENV = "ALERT_SLACK_WEBHOOK_URL"


class Channel(Protocol):
    name: str

    def send(self, alert: dict[str, Any]) -> None:
        """Deliver or raise; an exception leaves the alert pending for this channel."""


def subject(alert: dict[str, Any]) -> str:
    return f"[sync_platform {alert['severity'].upper()}] {alert['type']} (alert #{alert['id']})"


def body(alert: dict[str, Any]) -> str:
    return (
        f"{alert['message']}\n\nseverity: {alert['severity']}\ntype: {alert['type']}\n"
        f"first seen: {alert['created_at']}\noccurrences: {alert['occurrences']}\n\n"
        f"Acknowledge: sync-platform alerts ack {alert['id']}\n"
        "Runbook: docs/operations.md, 'Alerts'"
    )


@dataclass
class EmailChannel:
    host: str
    port: int
    sender: str
    recipients: list[str]
    username: str | None = None
    password: str | None = None
    security: str = "starttls"
    ca_file: str | None = None
    timeout: float = 20.0
    name: str = "email"

    def _tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca_file)

    def send(self, alert: dict[str, Any]) -> None:
        message = EmailMessage()
        message["Subject"] = subject(alert)
        message["From"] = self.sender
        message["To"] = ", ".join(self.recipients)
        message.set_content(body(alert))
        if self.security == "ssl":
            smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=self._tls())
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        with smtp:
            if self.security == "starttls":
                smtp.starttls(context=self._tls())
            if self.username:
                smtp.login(self.username, self.password or "")
            smtp.send_message(message)


@dataclass
class WebhookChannel:
    """A Slack-compatible incoming webhook: POST {"text": …}."""

    url: str
    timeout: float = 10.0
    name: str = "slack"

    def send(self, alert: dict[str, Any]) -> None:
        response = httpx.post(
            self.url, json={"text": f"*{subject(alert)}*\n{body(alert)}"}, timeout=self.timeout
        )
        response.raise_for_status()


def configured_channels(environ: dict[str, str] | None = None) -> list[Channel]:
    """The channels this environment configures (the log is always on, separately)."""
    env = os.environ if environ is None else environ
    channels: list[Channel] = []
    if env.get(SMTP_HOST_ENV) and env.get(EMAIL_TO_ENV):
        security = env.get(SMTP_SECURITY_ENV, "starttls")
        channels.append(
            EmailChannel(
                host=env[SMTP_HOST_ENV],
                port=int(env.get(SMTP_PORT_ENV) or (465 if security == "ssl" else 587)),
                sender=env.get(EMAIL_FROM_ENV, "sync-platform@localhost"),
                recipients=[r.strip() for r in env[EMAIL_TO_ENV].split(",") if r.strip()],
                username=env.get(SMTP_USERNAME_ENV),
                password=env.get(SMTP_PASSWORD_ENV),
                security=security,
                ca_file=env.get(SMTP_CA_FILE_ENV),
            )
        )
    if env.get(SLACK_WEBHOOK_ENV):
        channels.append(WebhookChannel(env[SLACK_WEBHOOK_ENV]))
    return channels


def configured_channel_names() -> list[str]:
    return [channel.name for channel in configured_channels()]
