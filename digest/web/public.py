"""The pages anyone can reach: subscribe (double opt-in), confirm, unsubscribe (with one
click, RFC 8058), /healthz for monitors, and the web versions of sent digests."""

from __future__ import annotations

import hmac
import json
from datetime import timedelta

from flask import Blueprint, Response, abort, make_response, request

from digest import signup
from digest.clock import utc_now
from digest.errors import SubscriberError
from digest.message import archive_token, header_safe
from digest.status import health
from digest.subscribers import check_address
from digest.web.archive import public_html, recent_digests, stored_digest
from digest.web.context import web
from digest.web.security import ARCHIVE_CSP, require_csrf

public = Blueprint("public", __name__)


@public.get("/subscribe")
def subscribe_form() -> Response:
    return web().page("subscribe.html")


@public.post("/subscribe")
def subscribe() -> Response:
    w = web()
    require_csrf(w.key)
    if not w.subscribe_limit.allow(request.remote_addr or "?"):
        return w.page("message.html", 429, heading="Too many attempts",
                      text="Please wait a few minutes before trying again.")
    try:
        email = check_address(request.form.get("email", ""))
    except SubscriberError:
        return w.page("subscribe.html", 400, error="That does not look like an email "
                      "address. Please check it and try again.")
    name = header_safe(request.form.get("name", ""))[:120]
    fmt = "text" if request.form.get("format") == "text" else "html"
    signup.request_signup(w.state, email, name, fmt, utc_now())
    w.signups.wake()
    return w.page("message.html", heading="Check your inbox",
                  text="If this address can be subscribed, a message with a confirmation "
                       "link is on its way. The link is valid for seven days.")


@public.get("/confirm/<token>")
def confirm(token: str) -> Response:
    w = web()
    if not signup.confirm(w.state, w.keys, token, utc_now()):
        return w.page("message.html", 400, heading="This link does not work",
                      text="It may have expired or been copied incompletely. You can "
                           "subscribe again from the subscription page.")
    return w.page("message.html", heading="You are subscribed",
                  text=f"Thank you. The next {w.config.digest.title} will reach you.")


@public.get("/unsubscribe/<token>")
def unsubscribe_page(token: str) -> Response:
    w = web()
    link = signup.unsubscribe_link(w.state, w.keys, token)
    if link is None:
        return _invalid_link()
    if link.test_send:
        return _test_send_link()
    row = link.row
    return w.page("unsubscribe.html", token=token, email=row.email if row else "",
                  already=row is None or row.status not in ("active", "pending"))


@public.post("/unsubscribe/<token>")
def unsubscribe(token: str) -> Response:
    w = web()
    link = signup.unsubscribe_link(w.state, w.keys, token)
    if link is None:
        return _invalid_link()
    if link.test_send:
        return _test_send_link()
    # RFC 8058 asks for a form-encoded body; accept the same text with any content type.
    one_click = request.form.get("List-Unsubscribe") == "One-Click" or \
        request.get_data(cache=True, as_text=True).strip() == "List-Unsubscribe=One-Click"
    if not one_click:
        require_csrf(w.key)
    signup.unsubscribe(w.state, link, "one-click unsubscribe (RFC 8058)" if one_click
                       else "unsubscribe page", utc_now())
    if one_click:
        return Response("Unsubscribed.\n", 200, mimetype="text/plain")
    who = link.row.email if link.row else "This address"
    return w.page("message.html", heading="You are unsubscribed",
                  text=f"{who} will not receive {w.config.digest.title} any more.")


@public.get("/healthz")
def healthz() -> Response:
    """Last successful gather and send; with ?max_age_hours=N, 503 when the last send is
    older than that (or there never was one), for a monitor to alert on."""
    w = web()
    now = utc_now()
    found = health(w.config, w.state, now)
    data, status = found.as_json(), 200
    asked = request.args.get("max_age_hours")
    max_age = request.args.get("max_age_hours", type=float)
    if asked is not None and max_age is None:
        return Response(f"max_age_hours: expected a number of hours, got {asked!r}\n",
                        400, mimetype="text/plain")
    if max_age is not None:
        data["ok"] = found.fresh(timedelta(hours=max_age), now)
        status = 200 if data["ok"] else 503
    return Response(json.dumps(data, indent=2) + "\n", status, mimetype="application/json")


@public.get("/archive/")
def public_archive() -> Response:
    w = web()
    if not w.config.web.public_archive:
        abort(404)
    digests = [d for d in recent_digests(w.state, limit=500) if d.status == "sent"]
    links = {d.id: f"{d.id}/?k={archive_token(w.key, d.id)}" for d in digests}
    return w.page("archive.html", digests=digests, links=links)


@public.get("/archive/<int:digest_id>/")
def public_archive_digest(digest_id: int) -> Response:
    w = web()
    token = request.args.get("k", "").encode("utf-8", "surrogatepass")
    allowed = w.config.web.public_archive or any(
        hmac.compare_digest(token, archive_token(key, digest_id).encode()) for key in w.keys)
    stored = stored_digest(w.state, digest_id) if allowed else None
    if stored is None:
        abort(404)
    # Straight to the articles: a web visitor or a crawler of the public archive is not a
    # reader of the email, and would blur the clicks the desk shows.
    targets = [a.target for a in w.state.ledger.digest_articles(digest_id)]
    response = make_response(public_html(w.config, stored.rendered, digest_id, w.key,
                                         targets), 200)
    response.headers["Content-Type"] = "text/html; charset=utf-8"
    response.headers["Content-Security-Policy"] = ARCHIVE_CSP
    return response


def _test_send_link() -> Response:
    return web().page("message.html", heading="This link came in a test send",
                      text="In a real digest it unsubscribes the reader who received it. "
                           "Nothing was changed.")


def _invalid_link() -> Response:
    return web().page("message.html", 400, heading="This link does not work",
                      text="It may have been copied incompletely. Use the link in the "
                           "newsletter you received.")
