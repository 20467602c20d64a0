"""Answering a tracked link or the open image: where a genuine token leads, and whether
the request counts, as a person's or an automated one, or not at all (a repeat)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from urllib.parse import urlsplit

from digest.state import State
from digest.tracking import (
    RepeatFilter,
    Request,
    TrackedLink,
    client_key,
    is_automated,
    read_click,
    read_open,
)

CONTROL_OR_SPACE = frozenset(chr(c) for c in (*range(33), 127))


def follow_click(state: State, keys: Sequence[bytes], repeats: RepeatFilter, token: str,
                 request: Request, client: str, now: datetime) -> str | None:
    """The article a tracked link leads to, after counting the click; None for a token
    that is forged, damaged, from another install or names no article of a sent digest
    (the web app answers 404: a link never leads anywhere but to a digest's own article)."""
    link = read_click(keys, token)
    if link is None or link.position is None:
        return None
    target = state.ledger.link_target(link.digest_id, link.position)
    if target is None or not _is_article_url(target):
        return None
    _count(state, repeats, link, request, client, now)
    return target


def count_open(state: State, keys: Sequence[bytes], repeats: RepeatFilter, token: str,
               request: Request, client: str, now: datetime) -> bool:
    """Count a load of the open image when the token is genuine; whether it counted."""
    link = read_open(keys, token.removesuffix(".gif"))
    return link is not None and _count(state, repeats, link, request, client, now)


def _count(state: State, repeats: RepeatFilter, link: TrackedLink, request: Request,
           client: str, now: datetime) -> bool:
    reader = link.reader
    delivered = state.ledger.delivered_at(link.digest_id, reader, now) if reader else None
    if delivered is None:  # the reader was forgotten since: the click counts, unnamed
        reader = ""
        delivered = state.ledger.delivered_at(link.digest_id, "", now)
    if delivered is None:  # not one message of it has gone out: nobody can have clicked
        return False
    since = (now - delivered).total_seconds()
    automated = is_automated(Request(request.method, request.user_agent,
                                     request.accept_language, since),
                             knows_reader=bool(reader))
    who = reader or client_key(client, request.user_agent)
    if not repeats.first((link.digest_id, link.position, who, automated)):
        return False
    if not repeats.within_budget(client_key(client, "")):
        return False
    if link.position is None:
        state.engagement.record_open(link.digest_id, automated=automated, reader=reader,
                                     now=now)
    else:
        state.engagement.record_click(link.digest_id, link.position, automated=automated,
                                      reader=reader, now=now)
    return True


def _is_article_url(url: str) -> bool:
    if CONTROL_OR_SPACE.intersection(url):
        return False
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  raises on a port out of range
    except ValueError:  # a malformed IPv6 host or port: nowhere a browser could go
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)
