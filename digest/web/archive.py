"""Sent digests as pages: the archive's rows, and a digest's HTML with no subscriber in it
(a neutral greeting, the subscribe page where the unsubscribe link was)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from digest.config import Config
from digest.message import archive_token
from digest.models import RenderedDigest
from digest.render import fill, reader_values
from digest.state import State
from digest.state.ledger import StoredDigest


@dataclass(frozen=True)
class ArchiveRow:
    """One past digest as the archive lists it."""

    id: int
    created_at: datetime
    status: str
    subject: str
    articles: int
    recipients: int
    sent: int
    failed: int


def recent_digests(state: State, limit: int) -> list[ArchiveRow]:
    """The latest digests, newest first."""
    return [ArchiveRow(d.digest.id, d.digest.created_at, d.digest.status, d.digest.subject,
                       d.articles, d.counts.total, d.counts.sent, d.counts.failed)
            for d in state.ledger.recent_digests(limit)]


def stored_digest(state: State, digest_id: int) -> StoredDigest | None:
    """A digest by the id a URL names (ids past the database's integers name none)."""
    if not 0 < digest_id < 2**63:
        return None
    return state.ledger.get_digest(digest_id)


def public_html(config: Config, rendered: RenderedDigest, digest_id: int, key: bytes,
                targets: Sequence[str]) -> str:
    """A sent digest with no subscriber in it, its article links leading straight to
    `targets` (the web version and the editor's copy count no clicks)."""
    base = config.email.base_url.rstrip("/")
    values = reader_values(name="", email="", unsubscribe_url=f"{base}/subscribe",
                           web_url=f"{base}/archive/{digest_id}/?k="
                                   f"{archive_token(key, digest_id)}",
                           open_url=f"{base}/o/archive.gif")  # viewing it is no open
    values["name"] = "reader"  # "Hello reader," in templates that greet by name alone
    page = fill(rendered, values,
                lambda position: targets[position] if position < len(targets) else "").html
    return page.replace(">Unsubscribe</a> with one click", ">Subscribe</a> to get it by email")
