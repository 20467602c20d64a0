"""Tracked links and the open image ([tracking]): /c/<token> redirects to the article the
token names (302) and /o/<token>.gif answers a transparent pixel, each after counting."""

from __future__ import annotations

from flask import Blueprint, Response, abort, redirect, request

from digest.clicks import count_open, follow_click
from digest.clock import utc_now
from digest.tracking import GIF_PIXEL, Request
from digest.web.context import web

tracked = Blueprint("tracked", __name__)


def _request() -> Request:
    return Request(method=request.method, user_agent=request.headers.get("User-Agent", ""),
                   accept_language=request.headers.get("Accept-Language", ""),
                   seconds_since_delivery=None)


@tracked.route("/c/<token>", methods=["GET", "HEAD"])
def click(token: str) -> Response:
    w = web()
    target = follow_click(w.state, w.keys, w.repeats, token, _request(),
                          request.remote_addr or "?", utc_now())
    if target is None:
        abort(404)
    response = redirect(target, 302)
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    return response  # type: ignore[return-value]


@tracked.route("/o/<name>", methods=["GET", "HEAD"])
def open_image(name: str) -> Response:
    if not name.endswith(".gif"):
        abort(404)
    w = web()
    count_open(w.state, w.keys, w.repeats, name, _request(), request.remote_addr or "?",
               utc_now())
    # The same pixel for any name: an image never breaks, and says nothing of the token.
    return Response(GIF_PIXEL, 200, mimetype="image/gif",
                    headers={"Cache-Control": "no-store"})
