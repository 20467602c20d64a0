"""Joining and leaving from the web: double opt-in (the address becomes pending and gets
a signed, expiring confirmation link), confirming, and unsubscribing. Nothing here tells
a caller whether an address was already on the list."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime

from digest.clock import Clock, utc_now
from digest.config import Config
from digest.deliver import configured_transport
from digest.deliver.send import envelope_sender
from digest.errors import DigestError
from digest.message import HEADER_POLICY, new_message_id, sender_domain
from digest.state import State
from digest.state.subscribers import SubscriberRow
from digest.tokens import TEST_TOKEN_ID, TokenHolder, confirm_token, read_confirm, read_unsubscribe

log = logging.getLogger(__name__)

CONFIRM_MAX_AGE = timedelta(days=7)
CONFIRM_RESEND_AFTER = timedelta(minutes=10)


def request_signup(state: State, email: str, name: str, fmt: str, now: datetime) -> None:
    """Queue a subscribe request: one insert, the same for an address that is new, pending,
    active or suppressed, so the answer's timing tells nothing."""
    state.signups.add(email, name, fmt, now)


def handle_signups(config: Config, state: State, key: bytes, clock: Clock = utc_now) -> int:
    """Work through the queued requests (the double opt-in of each); how many."""
    handled = 0
    for request in state.signups.waiting():
        try:
            start_double_opt_in(config, state, key, request.email, request.name,
                                request.format, clock())
        except DigestError as exc:
            log.error("subscribe request could not be handled: %s", exc)
        state.signups.done(request.id)
        handled += 1
    return handled


def start_double_opt_in(config: Config, state: State, key: bytes, email: str, name: str,
                        fmt: str, now: datetime) -> None:
    """Make the address pending and mail a confirmation link, unless it is active,
    suppressed, or was sent one in the last few minutes."""
    records = state.subscribers
    row = records.get(email)
    if records.is_suppressed(email) and (row is None or row.status != "pending"):
        log.info("subscribe request for a suppressed address ignored")
        return
    if row is not None and row.status == "active":
        return
    if row is None:
        records.add(email, name, now, status="pending", cause="subscribe form", format=fmt)
    recent = row is not None and row.confirm_sent_at is not None and \
        now - row.confirm_sent_at < CONFIRM_RESEND_AFTER
    pending = records.get(email)
    if recent or pending is None:
        return
    token = confirm_token(key, pending.token_id, int(now.timestamp()))
    try:
        send_confirmation(config, email, f"{config.email.base_url.rstrip('/')}/confirm/{token}")
    except DigestError as exc:
        log.error("confirmation email to a subscriber could not be sent: %s", exc)
        return
    records.mark_confirmation_sent(email, now)


def confirm(state: State, keys: Sequence[bytes], token: str, now: datetime) -> bool:
    """Follow a confirmation link: the pending address becomes active. False for a
    forged, expired or spent link."""
    holder = read_confirm(keys, token, now=int(now.timestamp()),
                          max_age=int(CONFIRM_MAX_AGE.total_seconds()))
    row = _holder_row(state, holder)
    if row is None or row.status not in ("pending", "active"):
        return False
    if row.status == "pending":
        state.subscribers.set_status(row.email, "active", now, "confirmed by link")
    return True


@dataclass(frozen=True)
class UnsubscribeLink:
    """What an unsubscribe link names: a subscriber (or nobody any more), or a test send."""

    row: SubscriberRow | None
    test_send: bool = False


def unsubscribe_link(state: State, keys: Sequence[bytes], token: str) -> UnsubscribeLink | None:
    """Whom a genuine unsubscribe link names; None for a forged or damaged one."""
    holder = read_unsubscribe(keys, token)
    if holder is None:
        return None
    return UnsubscribeLink(_holder_row(state, holder), holder.token_id == TEST_TOKEN_ID)


def unsubscribe(state: State, link: UnsubscribeLink, cause: str, now: datetime) -> None:
    """Stop mailing the address a link names, if it is on the list (idempotent, and silent
    either way)."""
    if link.row is not None:
        state.subscribers.set_status(link.row.email, "unsubscribed", now, cause)


def _holder_row(state: State, holder: TokenHolder | None) -> SubscriberRow | None:
    if holder is None:
        return None
    if holder.token_id:
        return state.subscribers.by_token(holder.token_id)
    return state.subscribers.get(holder.email)


def send_confirmation(config: Config, email: str, link: str) -> None:
    """Mail the confirmation link."""
    msg = EmailMessage(policy=HEADER_POLICY)
    msg["From"] = config.email.from_address
    msg["To"] = email
    msg["Subject"] = f"Please confirm your subscription to {config.digest.title}"
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = new_message_id(0, sender_domain(config.email.from_address)).replace(
        "<digest-0.", "<confirm.")
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(
        f"Someone, probably you, asked to receive {config.digest.title} at this address.\n\n"
        f"To confirm, open this link within seven days:\n{link}\n\n"
        "If you did not ask for it, ignore this message and nothing will happen.\n"
        + (f"\n{config.email.postal_address}\n" if config.email.postal_address else ""))
    transport = configured_transport(config)
    transport.open()
    try:
        transport.send(envelope_sender(config), email, msg.as_bytes(), utf8=not email.isascii())
    finally:
        transport.close()
