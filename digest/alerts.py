"""Alerts: a short plain-text email to [alerts] email when a scheduled digest did not go
out as planned. An alert that cannot be delivered is logged, never raised: the job that
wanted to send it has already done (or failed) its real work."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr

from digest.config import Config
from digest.deliver import Transport, configured_transport
from digest.errors import DeliveryError, TransportError
from digest.models import RunReport

log = logging.getLogger(__name__)


def recipients(config: Config) -> list[str]:
    """The addresses in [alerts] email."""
    return [parseaddr(part)[1] for part in config.alerts.email.split(",") if part.strip()]


def alert_message(config: Config, subject: str, body: str, now: datetime) -> EmailMessage:
    """The alert as an email from the digest's own From address."""
    message = EmailMessage()
    message["From"] = config.email.from_address
    message["To"] = ", ".join(recipients(config))
    message["Subject"] = f"[{config.digest.title} alert] {subject}"
    message["Date"] = format_datetime(now.astimezone(UTC))
    domain = parseaddr(config.email.from_address)[1].rpartition("@")[2] or "localhost"
    message["Message-ID"] = make_msgid("alert", domain=domain)
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(f"{body}\n\n-- \nSent by `digest schedule` ({config.path}).\n"
                        "`digest status` shows the last runs and why each did what it did.\n")
    return message


def send_alert(config: Config, subject: str, body: str, *,
               transport: Transport | None = None,
               now: datetime | None = None) -> bool:
    """Mail an alert to every [alerts] email address; False when there is none or it failed."""
    to = recipients(config)
    if not to:
        return False
    message = alert_message(config, subject, body, now or datetime.now(UTC))
    sender = parseaddr(config.email.return_path or config.email.from_address)[1]
    link = transport or configured_transport(config)
    try:
        link.open()
        for address in to:
            link.send(sender, address, message.as_bytes())
    except (DeliveryError, TransportError, OSError) as exc:
        log.warning("alert %r could not be sent to %s: %s", subject, ", ".join(to), exc)
        return False
    finally:
        link.close()
    log.info("alert sent to %s: %s", ", ".join(to), subject)
    return True


def alerts_for(report: RunReport, *, scheduled: bool) -> list[tuple[str, str]]:
    """The alerts a finished run calls for: (subject, body) each."""
    found = []
    if scheduled and report.outcome == "skipped" and report.alert_skip:
        found.append(("scheduled digest skipped", f"No digest went out: {report.reason}\n\n"
                      f"Articles found: {report.found}, new: {report.new}."))
    if report.outcome == "failed":
        found.append(("digest run failed", f"The run failed: {report.reason}\n\n"
                      f"Sent {report.sent}, failed {report.failed}, still pending "
                      f"{report.remaining}."))
    elif report.failed:
        found.append((f"digest sent with {report.failed} failed deliveries",
                      f"Sent {report.sent}, failed {report.failed}, deferred "
                      f"{report.deferred} of {report.recipients} recipients.\n"
                      "`digest subscribers show ADDRESS` tells what each server answered."))
    for failure in report.newly_failing:
        found.append(("a source keeps failing", f"This source has failed 3 cycles in a row:\n"
                      f"{failure.reason}\n\nIts articles are missing from the digest "
                      "until it recovers."))
    return found
