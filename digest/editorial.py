"""The editor's say over the next scheduled digest: hold it, release it, approve it (the
approval covers the articles the editor saw), withdraw an approval; and the decision
whether a digest is cleared to go out, which returns the reason it is not rather than
acting on it."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from digest.errors import EditorialError
from digest.models import Article, ArticleEdit
from digest.state import State
from digest.state.editorial import Approval, Hold

log = logging.getLogger(__name__)


def put_on_hold(state: State, who: str, reason: str, now: datetime) -> Hold | None:
    """Hold the next scheduled digest; a hold withdraws any approval. Returns the hold it
    replaces, if there was one."""
    previous = state.editorial.set_hold(who, reason, now)
    state.editorial.withdraw_approval(now)
    log.info("digest put on hold by %s%s", who, f": {reason}" if reason else "")
    return previous


def release(state: State, now: datetime) -> bool:
    """Lift the hold; False when there was none."""
    return state.editorial.end_hold(now)


def approve(state: State, who: str, articles: Sequence[str], now: datetime) -> int:
    """Approve the next scheduled digest as these articles; approving lifts a hold.
    Returns how many articles the approval covers."""
    if not articles:
        raise EditorialError("nothing to approve: the next digest has no articles yet")
    state.editorial.approve(who, articles, now)
    state.editorial.end_hold(now)
    log.info("next digest approved by %s (%d articles)", who, len(articles))
    return len(articles)


def withdraw(state: State, now: datetime) -> bool:
    """Withdraw the approval in force; False when there was none."""
    withdrawn = state.editorial.withdraw_approval(now)
    if withdrawn:
        log.info("approval withdrawn")
    return withdrawn


def not_excluded(articles: Sequence[Article], edits: Mapping[str, ArticleEdit]
                 ) -> list[Article]:
    """The articles an editor has not excluded: only they count as new."""
    return [a for a in articles if not ((e := edits.get(a.url)) is not None and e.excluded)]


def held(hold: Hold | None, *, scheduled: bool, articles: int) -> str | None:
    """Why a hold stops this digest, or None when there is no hold."""
    if hold is None:
        return None
    why = f"on hold (set by {hold.by} at {_minute(hold.at)}" + (
        f": {hold.reason})" if hold.reason else ")")
    if scheduled:
        return f"{why}; {articles} article(s) wait for the next digest"
    return f"{why}; `digest release` lifts it"


def unapproved(approval: Approval | None, urls: Sequence[str]) -> str | None:
    """Why these articles are not covered by the approval in force, or None when they are:
    an approval covers the articles the editor saw, and a digest with others waits for a
    new one."""
    unseen = [url for url in urls if approval is None or url not in set(approval.articles)]
    if approval is not None and not unseen:
        return None
    ready = f"{len(urls)} article(s) ready"
    if approval is not None:
        ready += f", {len(unseen)} of them new since {approval.by} approved"
    return (f"awaiting approval: {ready}; the scheduler sends as soon as an editor approves "
            "(`digest approve` or the editor page)")


def _minute(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
