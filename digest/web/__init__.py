"""The web app (`digest serve`): subscribe with double opt-in, confirm, and unsubscribe
with one click (RFC 8058). Plain server-rendered pages from templates/web/, no JavaScript,
CSRF tokens on every form, a rate limit on subscribe, and no page that tells whether an
address is on the list."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import defaultdict, deque
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

import jinja2
from flask import Flask, Response, abort, make_response, request

from digest.config import Config
from digest.deliver import configured_transport
from digest.errors import DigestError, SubscriberError
from digest.message import HEADER_POLICY, header_safe
from digest.pipeline import envelope_sender, open_store, state_key
from digest.store import as_utc, subscribers
from digest.subscribers import SubscriberList, check_address, comparison_key
from digest.tokens import (
    csrf_ok,
    make_csrf_token,
    make_timed_token,
    read_timed_token,
    read_token,
)

log = logging.getLogger(__name__)

CONFIRM_MAX_AGE = 7 * 24 * 3600
CONFIRM_RESEND_AFTER = timedelta(minutes=10)
SUBSCRIBE_LIMIT = (5, 600.0)  # attempts per client address per window (seconds)
CSRF_COOKIE = "digest_csrf"


class RateLimit:
    """At most `count` events per key within `window` seconds."""

    def __init__(self, count: int, window: float) -> None:
        self.count, self.window = count, window
        self._events: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        now = time.monotonic()
        with self._lock:
            events = self._events[key]
            while events and events[0] <= now - self.window:
                events.popleft()
            if len(events) >= self.count:
                return False
            events.append(now)
            return True


def create_app(config: Config) -> Flask:
    """The Flask application for one configuration."""
    app = Flask(__name__)
    # Behind a reverse proxy that terminates TLS, trust its X-Forwarded-Proto/For once.
    from werkzeug.middleware.proxy_fix import ProxyFix

    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1)  # type: ignore[method-assign]
    store = open_store(config)
    roster = SubscriberList(store)
    key = state_key(config)
    pages = jinja2.Environment(loader=jinja2.FileSystemLoader(str(config.templates_path / "web")),
                               autoescape=True, undefined=jinja2.StrictUndefined)
    limit = RateLimit(*SUBSCRIBE_LIMIT)
    base = {"title": config.digest.title, "postal_address": config.email.postal_address}

    def page(name: str, status: int = 200, **context: object) -> Response:
        token = make_csrf_token(key)
        body = pages.get_template(name).render(csrf_token=token, **base, **context)
        response = make_response(body, status)
        response.headers["Content-Type"] = "text/html; charset=utf-8"
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Content-Security-Policy"] = "default-src 'none'; style-src 'self' " \
                                                      "'unsafe-inline'; form-action 'self'"
        response.set_cookie(CSRF_COOKIE, token, httponly=True, samesite="Strict",
                            secure=request.is_secure)
        return response

    def require_csrf() -> None:
        if not csrf_ok(key, request.form.get("csrf_token", ""),
                       request.cookies.get(CSRF_COOKIE, "")):
            abort(403)

    @app.get("/subscribe")
    def subscribe_form() -> Response:
        return page("subscribe.html")

    @app.post("/subscribe")
    def subscribe() -> Response:
        require_csrf()
        if not limit.allow(request.remote_addr or "?"):
            return page("message.html", 429, heading="Too many attempts",
                        text="Please wait a few minutes before trying again.")
        try:
            email = check_address(request.form.get("email", ""))
        except SubscriberError:
            return page("subscribe.html", 400, error="That does not look like an email "
                        "address. Please check it and try again.")
        name = header_safe(request.form.get("name", ""))[:120]
        fmt = "text" if request.form.get("format") == "text" else "html"
        _start_double_opt_in(config, roster, key, email, name, fmt)
        return page("message.html", heading="Check your inbox",
                    text="If this address can be subscribed, a message with a confirmation "
                         "link is on its way. The link is valid for seven days.")

    @app.get("/confirm/<token>")
    def confirm(token: str) -> Response:
        email = read_timed_token(key, "confirm", token, now=int(time.time()),
                                 max_age=CONFIRM_MAX_AGE)
        row = roster.get(email) if email else None
        if row is None or row["status"] not in ("pending", "active"):
            return page("message.html", 400, heading="This link does not work",
                        text="It may have expired or been copied incompletely. You can "
                             "subscribe again from the subscription page.")
        if row["status"] == "pending":
            roster.set_status(email or "", "active", datetime.now(UTC), "confirmed by link")
        return page("message.html", heading="You are subscribed",
                    text=f"Thank you. The next {config.digest.title} will reach you.")

    @app.get("/unsubscribe/<token>")
    def unsubscribe_page(token: str) -> Response:
        if read_token(key, "unsubscribe", token) is None:
            return _invalid()
        return page("unsubscribe.html", token=token)

    @app.post("/unsubscribe/<token>")
    def unsubscribe(token: str) -> Response:
        email = read_token(key, "unsubscribe", token)
        if email is None:
            return _invalid()
        # RFC 8058 asks for a form-encoded body; accept the same text with any content type.
        one_click = request.form.get("List-Unsubscribe") == "One-Click" or \
            request.get_data(cache=True, as_text=True).strip() == "List-Unsubscribe=One-Click"
        if not one_click:
            require_csrf()
        _unsubscribe(roster, email, "one-click unsubscribe (RFC 8058)" if one_click
                     else "unsubscribe page")
        if one_click:
            return Response("Unsubscribed.\n", 200, mimetype="text/plain")
        return page("message.html", heading="You are unsubscribed",
                    text=f"You will not receive {config.digest.title} any more.")

    @app.get("/healthz")
    def healthz() -> Response:
        """Last successful gather and send; with ?max_age_hours=N, 503 when the last send
        is older than that (or there never was one), for a monitor to alert on."""
        from digest.scheduler import health

        now = datetime.now(UTC)
        data = health(config, store, now)
        status = 200
        asked = request.args.get("max_age_hours")
        max_age = request.args.get("max_age_hours", type=float)
        if asked is not None and max_age is None:
            return Response(f"max_age_hours: expected a number of hours, got {asked!r}\n",
                            400, mimetype="text/plain")
        if max_age is not None:
            last = data["last_send_at"]
            fresh = last is not None and \
                now - datetime.fromisoformat(last) <= timedelta(hours=max_age)
            data["ok"] = fresh
            status = 200 if fresh else 503
        return Response(json.dumps(data, indent=2) + "\n", status,
                        mimetype="application/json")

    def _invalid() -> Response:
        return page("message.html", 400, heading="This link does not work",
                    text="It may have been copied incompletely. Use the link in the "
                         "newsletter you received.")

    @app.errorhandler(403)
    def forbidden(_error: Exception) -> Response:
        return page("message.html", 403, heading="This form has expired",
                    text="Please reload the page and try again.")

    from digest.web.editor import register_editor

    register_editor(app, config, store, pages)

    @app.errorhandler(404)
    def not_found(_error: Exception) -> Response:
        return page("message.html", 404, heading="Page not found", text="")

    app.extensions["digest_store"] = store
    return app


def _unsubscribe(roster: SubscriberList, email: str, cause: str) -> None:
    now = datetime.now(UTC)
    if roster.get(email) is None:
        return  # nothing to do, and nothing to tell
    roster.set_status(email, "unsubscribed", now, cause)


def _start_double_opt_in(config: Config, roster: SubscriberList, key: bytes, email: str,
                         name: str, fmt: str = "html") -> None:
    """Make the address pending and mail a confirmation link, unless it is active,
    suppressed, or was sent one in the last few minutes."""
    now = datetime.now(UTC)
    row = roster.get(email)
    if roster.is_suppressed(email) and (row is None or row["status"] != "pending"):
        log.info("subscribe request for a suppressed address ignored")
        return
    if row is not None and row["status"] == "active":
        return
    if row is None:
        roster.add(email, name, now, status="pending", cause="subscribe form", format=fmt)
    recent = row is not None and row.get("confirm_sent_at") is not None and \
        now - as_utc(row["confirm_sent_at"]) < CONFIRM_RESEND_AFTER
    if recent:
        return
    token = make_timed_token(key, "confirm", email, int(now.timestamp()))
    try:
        _send_confirmation(config, email, f"{config.email.base_url.rstrip('/')}/confirm/{token}")
    except DigestError as exc:
        log.error("confirmation email to a subscriber could not be sent: %s", exc)
        return
    with roster.engine.begin() as conn:
        conn.execute(subscribers.update().where(subscribers.c.email_key ==
                                                comparison_key(email))
                     .values(confirm_sent_at=now))


def _send_confirmation(config: Config, email: str, link: str) -> None:
    msg = EmailMessage(policy=HEADER_POLICY)
    msg["From"] = config.email.from_address
    msg["To"] = email
    msg["Subject"] = f"Please confirm your subscription to {config.digest.title}"
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


def serve(config: Config, host: str, port: int) -> None:
    """Run the app under waitress (a production WSGI server) until interrupted."""
    import signal
    import sys

    from waitress.server import create_server

    app = create_app(config)
    try:
        server = create_server(app, host=host, port=port, threads=8, ident="digest")
    except (OSError, ValueError) as exc:
        app.extensions["digest_store"].close()
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise DigestError(f"digest serve: cannot listen on {host}:{port} ({reason})") from None
    # SIGTERM (systemd stop) ends it like Ctrl-C, with exit status 0.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(0))
    log.info("serving %s on http://%s:%d/ (public URL %s)", config.digest.title, host, port,
             config.email.base_url)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
        app.extensions["digest_store"].close()
    log.info("web app stopped")
