"""The editor's desk: /editor/ shows the next digest as subscribers will get it and lets a
logged-in editor exclude, pin, move and rewrite articles, write an opening note, send a
test, approve or hold; /editor/archive/ lists past digests with the exact HTML sent; the
optional public /archive/ serves them without personal data."""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import wraps
from typing import Any

import jinja2
from flask import Flask, Response, abort, make_response, redirect, request, session, url_for
from werkzeug.security import check_password_hash, generate_password_hash

from digest import pipeline
from digest.compose import summary_for
from digest.config import Config
from digest.draft import move
from digest.errors import DigestError, SubscriberError
from digest.gather import gather, make_fetcher
from digest.message import archive_token
from digest.models import Article, Digest, GatherResult, RenderedDigest
from digest.preflight import PreflightReport
from digest.render import personalise
from digest.scheduler import next_fire_after
from digest.store import Store, StoredDigest
from digest.subscribers import SubscriberList

log = logging.getLogger(__name__)

DRAFT_MAX_AGE = 600.0  # seconds before the desk gathers the sources again on its own
LOGIN_LIMIT = (10, 600.0)
_DUMMY_HASH = generate_password_hash("not a password of anyone's")
PAGE_CSP = ("default-src 'none'; style-src 'self' 'unsafe-inline'; frame-src 'self'; "
            "img-src 'self' data:; form-action 'self'; frame-ancestors 'none'")
# The email preview: its own remote images may load, nothing else; scripts never run
# (the iframe is sandboxed too).
EMAIL_CSP = ("default-src 'none'; img-src https: http: data:; style-src 'unsafe-inline'; "
             "frame-ancestors 'self'; sandbox")


@dataclass
class Draft:
    """The next digest as the desk shows it."""

    digest: Digest
    rendered: RenderedDigest
    html: str
    text: str
    checks: PreflightReport
    candidates: tuple[Article, ...]
    generated: dict[str, str] = field(default_factory=dict)  # URL -> generated summary


class DraftDesk:
    """Gathers the candidate articles now and then (not on every click) and builds the
    draft from them with the editor's stored changes."""

    def __init__(self, config: Config, store: Store) -> None:
        self.config, self.store = config, store
        self._gathered: GatherResult | None = None
        self._gathered_at = 0.0
        self._checks: dict[str, PreflightReport] = {}
        self._lock = threading.Lock()

    def gathered(self, refresh: bool = False) -> GatherResult:
        with self._lock:
            stale = time.monotonic() - self._gathered_at > DRAFT_MAX_AGE
            if self._gathered is None or refresh or stale:
                with make_fetcher(self.config) as fetcher:
                    self._gathered = gather(self.config, self.store, fetcher, record=False)
                self._gathered_at = time.monotonic()
            return self._gathered

    def draft(self, refresh: bool = False) -> Draft:
        result = self.gathered(refresh)
        now = datetime.now(UTC)
        digest = pipeline.compose_next(self.config, self.store, result.articles, now)
        rendered = pipeline.render(self.config, digest)
        html, text = pipeline.sample_parts(self.config, rendered)
        fingerprint = hashlib.sha256(html.encode()).hexdigest()
        with self._lock:
            checks = self._checks.get(fingerprint)
        if checks is None:
            checks = pipeline.preflight_digest(self.config, rendered)
            with self._lock:
                self._checks = {fingerprint: checks}
        generated = {item.article.url: " ".join(
            summary_for(self.config, item.article).sentences)
            for item in digest.items if item.summary.method == "edited"}
        return Draft(digest=digest, rendered=rendered, html=html, text=text, checks=checks,
                     candidates=result.articles, generated=generated)


def register_editor(app: Flask, config: Config, store: Store,
                    pages: jinja2.Environment) -> None:
    """Add the editor's pages and the archive to the app."""
    secret = os.environ.get(config.web.secret_env, "")
    if secret:
        app.secret_key = secret
    else:
        log.warning("editor pages are off: set %s to a long random value to turn them on",
                    config.web.secret_env)
    app.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
                      SESSION_COOKIE_NAME="digest_editor",
                      SESSION_COOKIE_SECURE=config.email.base_url.startswith("https://"),
                      PERMANENT_SESSION_LIFETIME=timedelta(hours=config.web.session_hours))
    desk = DraftDesk(config, store)
    roster = SubscriberList(store)
    from digest.web import RateLimit

    logins = RateLimit(*LOGIN_LIMIT)
    key = pipeline.state_key(config)

    def csrf_token() -> str:
        if "csrf" not in session:
            session["csrf"] = secrets.token_urlsafe(32)
        return str(session["csrf"])

    def page(name: str, status: int = 200, **context: Any) -> Response:
        body = pages.get_template(name).render(
            title=config.digest.title, postal_address=config.email.postal_address,
            csrf_token=csrf_token() if secret else "",
            editor=session.get("editor") if secret else None,
            **{"error": "", "message": "", "next": "", **context})
        response = make_response(body, status)
        response.headers["Content-Type"] = "text/html; charset=utf-8"
        response.headers["Cache-Control"] = "no-store"
        response.headers["Content-Security-Policy"] = PAGE_CSP
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "same-origin"
        return response

    def email_frame(html: str) -> Response:
        response = make_response(html, 200)
        response.headers["Content-Type"] = "text/html; charset=utf-8"
        response.headers["Cache-Control"] = "no-store"
        response.headers["Content-Security-Policy"] = EMAIL_CSP
        response.headers["X-Frame-Options"] = "SAMEORIGIN"
        return response

    def editor_only(view: Callable[..., Response]) -> Callable[..., Response]:
        @wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Response:
            if not secret:
                return page("editor/off.html", 503, secret_env=config.web.secret_env)
            if session.get("editor") not in config.editors or not _session_alive():
                if request.method == "POST":
                    abort(403)
                return redirect(url_for("editor_login", next=request.path))  # type: ignore[return-value]
            if request.method == "POST":
                sent = request.form.get("csrf_token", "")
                if not sent or not hmac.compare_digest(sent, str(session.get("csrf", ""))):
                    abort(403)
            return view(*args, **kwargs)

        return guarded

    def _session_alive() -> bool:
        # Cookies are signed, not stored: a server-side record per login lets logout (and
        # expiry) end a session even for someone who kept a copy of the cookie.
        record = store.get_setting(f"editor-session:{session.get('sid', '')}")
        return bool(record) and record.get("editor") == session.get("editor") and \
            datetime.fromisoformat(record["expires"]) > datetime.now(UTC)

    def back(message: str = "", error: str = "") -> Response:
        session["flash"] = {"message": message, "error": error}
        return redirect(url_for("editor_desk", view=request.args.get("view", "")) + "#top")  # type: ignore[return-value]

    @app.get("/editor/login")
    def editor_login() -> Response:
        if not secret:
            return page("editor/off.html", 503, secret_env=config.web.secret_env)
        return page("editor/login.html", next=_safe_next(request.args.get("next", "")))

    @app.post("/editor/login")
    def editor_login_post() -> Response:
        if not secret:
            return page("editor/off.html", 503, secret_env=config.web.secret_env)
        sent = request.form.get("csrf_token", "")
        if not sent or not hmac.compare_digest(sent, str(session.get("csrf", ""))):
            abort(403)
        if not logins.allow(request.remote_addr or "?"):
            return page("editor/login.html", 429, error="Too many attempts; wait a few "
                        "minutes.", next="")
        name = request.form.get("name", "").strip()
        password = request.form.get("password", "")
        account = config.editors.get(name)
        # Check a hash even for an unknown name, so timing does not tell names apart.
        ok = check_password_hash(account.password_hash if account else _DUMMY_HASH, password)
        if not (account and ok):
            log.warning("editor login refused for %r from %s", name[:40], request.remote_addr)
            return page("editor/login.html", 401, error="Wrong name or password.", next="")
        session.clear()
        session.permanent = True
        session["editor"] = name
        session["sid"] = secrets.token_urlsafe(24)
        session["csrf"] = secrets.token_urlsafe(32)
        now = datetime.now(UTC)
        store.forget_settings("editor-session:", lambda record: datetime.fromisoformat(
            record["expires"]) > now)
        expires = now + timedelta(hours=config.web.session_hours)
        store.set_setting(f"editor-session:{session['sid']}",
                          {"editor": name, "expires": expires.isoformat()})
        log.info("editor %s logged in", name)
        return redirect(_safe_next(request.form.get("next", "")) or url_for("editor_desk"))  # type: ignore[return-value]

    @app.post("/editor/logout")
    @editor_only
    def editor_logout() -> Response:
        log.info("editor %s logged out", session.get("editor"))
        store.set_setting(f"editor-session:{session.get('sid', '')}", None)
        session.clear()
        return redirect(url_for("editor_login"))  # type: ignore[return-value]

    @app.get("/editor/")
    @editor_only
    def editor_desk() -> Response:
        try:
            draft = desk.draft()
        except DigestError as exc:
            return page("editor/desk.html", 500, draft=None, problem=str(exc), **_state())
        roster.sync_file(config.subscribers_path, datetime.now(UTC))
        counts = roster.count_by_status()
        upcoming = next_fire_after(config, datetime.now(UTC))
        flash = session.pop("flash", None) or {}
        included_urls = {item.article.url for item in draft.digest.items}
        edits = store.article_edits()
        return page(
            "editor/desk.html", draft=draft, digest=draft.digest,
            subject=draft.rendered.subject, preheader=draft.digest.preheader,
            warnings=[line for c, line in zip(draft.checks.checks, draft.checks.lines(),
                                              strict=True) if c.status not in ("ok", "skipped")],
            size=len(draft.rendered.html.encode("utf-8")), recipients=counts.get("active", 0),
            next_send=upcoming, timezone=config.schedule.timezone,
            excluded=[a for a in draft.candidates if a.url not in included_urls
                      and (e := edits.get(a.url)) is not None and e.excluded],
            edits=edits, phone=request.args.get("view") == "phone",
            default_test_address=_editor_email(config, session.get("editor", "")),
            message=flash.get("message", ""), error=flash.get("error", ""), **_state())

    def _state() -> dict[str, Any]:
        note = store.get_setting("draft_note") or {}
        return {"note": note.get("text", ""), "hold": store.get_setting("hold"),
                "approval": store.get_setting("approval"),
                "waiting": store.get_setting("waiting_slot"),
                "require_approval": config.schedule.require_approval}

    @app.get("/editor/draft.html")
    @editor_only
    def editor_draft_html() -> Response:
        return email_frame(desk.draft().html)

    @app.post("/editor/article")
    @editor_only
    def editor_article() -> Response:
        url = request.form.get("url", "")
        action = request.form.get("action", "")
        who = str(session["editor"])
        now = datetime.now(UTC)
        if url not in {a.url for a in desk.gathered().articles}:
            return back(error="That article is no longer in the draft.")
        try:
            if action in ("exclude", "include"):
                store.save_article_edit(url, now, who, excluded=int(action == "exclude"))
            elif action in ("pin", "unpin"):
                store.save_article_edit(url, now, who, pinned=int(action == "pin"))
            elif action in ("up", "down"):
                order = [item.article.url for item in desk.draft().digest.items]
                for position, moved in enumerate(move(order, url, -1 if action == "up" else 1)):
                    store.save_article_edit(moved, now, who, position=position)
            elif action == "edit":
                headline = " ".join(request.form.get("headline", "").split())[:300]
                summary = " ".join(request.form.get("summary", "").split())[:3000]
                generated = _generated_summary(url)
                store.save_article_edit(url, now, who, headline=headline,
                                        text="" if summary == generated else summary)
            elif action == "restore":
                store.save_article_edit(url, now, who, headline="", text="")
            else:
                abort(400)
        except DigestError as exc:
            return back(error=str(exc))
        log.info("editor %s: %s %s", who, action, url)
        return back(message=_done(action) + _withdraw_approval())

    def _withdraw_approval() -> str:
        # An approval covers the draft as it was; a changed draft needs a new one.
        if store.get_setting("approval") is None:
            return ""
        store.set_setting("approval", None)
        log.info("approval withdrawn: the draft changed")
        return " The approval was withdrawn: approve the changed draft again."

    def _generated_summary(url: str) -> str:
        article = next(a for a in desk.gathered().articles if a.url == url)
        return " ".join(summary_for(config, article).sentences)

    @app.post("/editor/note")
    @editor_only
    def editor_note() -> Response:
        text = request.form.get("note", "").replace("\r\n", "\n").strip()[:2000]
        store.set_setting("draft_note", {"text": text, "by": session["editor"],
                                         "at": datetime.now(UTC).isoformat()} if text else None)
        return back(message=("Note saved." if text else "Note removed.")
                    + _withdraw_approval())

    @app.post("/editor/refresh")
    @editor_only
    def editor_refresh() -> Response:
        desk.draft(refresh=True)
        return back(message="Sources read again.")

    @app.post("/editor/send-test")
    @editor_only
    def editor_send_test() -> Response:
        address = request.form.get("address", "").strip() or \
            _editor_email(config, str(session["editor"]))
        draft = desk.draft()
        try:
            reply, _ = pipeline.send_test(config, address, rendered=draft.rendered,
                                          articles=len(draft.digest.items))
        except SubscriberError:
            return back(error=f"{address!r} is not an email address.")
        except DigestError as exc:
            return back(error=f"The test could not be sent: {exc}")
        log.info("editor %s sent a test to %s", session["editor"], address)
        return back(message=f"Test sent to {address} ({reply[:60]}).")

    @app.post("/editor/approve")
    @editor_only
    def editor_approve() -> Response:
        draft = desk.draft()
        if not draft.digest.items:
            return back(error="Nothing to approve: the draft has no articles.")
        pipeline.approve(config, str(session["editor"]), datetime.now(UTC),
                         [item.article.url for item in draft.digest.items])
        return back(message="Approved: the next scheduled digest will go out.")

    @app.post("/editor/hold")
    @editor_only
    def editor_hold() -> Response:
        pipeline.set_hold(config, str(session["editor"]),
                          " ".join(request.form.get("reason", "").split())[:300],
                          datetime.now(UTC))
        return back(message="On hold: the next scheduled digest will be skipped.")

    @app.post("/editor/release")
    @editor_only
    def editor_release() -> Response:
        pipeline.release_hold(config)
        return back(message="Hold lifted.")

    @app.get("/editor/archive/")
    @editor_only
    def editor_archive() -> Response:
        return page("editor/archive.html", digests=_archive(store, limit=200))

    @app.get("/editor/archive/<int:digest_id>/")
    @editor_only
    def editor_archive_digest(digest_id: int) -> Response:
        stored = _stored_or_404(store, digest_id)
        return page("editor/archive_digest.html", stored=stored,
                    counts=store.delivery_counts(digest_id),
                    articles=store.digest_articles(digest_id))

    @app.get("/editor/archive/<int:digest_id>/email.html")
    @editor_only
    def editor_archive_email(digest_id: int) -> Response:
        stored = _stored_or_404(store, digest_id)
        return email_frame(_public_html(config, stored.rendered, digest_id, key))

    @app.get("/archive/")
    def public_archive() -> Response:
        if not config.web.public_archive:
            abort(404)
        digests = [d for d in _archive(store, limit=500) if d["status"] == "sent"]
        for d in digests:
            d["link"] = f"{d['id']}/?k={archive_token(key, d['id'])}"
        return page("archive.html", digests=digests)

    @app.get("/archive/<int:digest_id>/")
    def public_archive_digest(digest_id: int) -> Response:
        token = request.args.get("k", "")
        allowed = config.web.public_archive or hmac.compare_digest(
            token, archive_token(key, digest_id))
        stored = store.get_digest(digest_id) if allowed else None
        if stored is None:
            abort(404)
        response = make_response(_public_html(config, stored.rendered, digest_id, key), 200)
        response.headers["Content-Type"] = "text/html; charset=utf-8"
        response.headers["Content-Security-Policy"] = EMAIL_CSP.replace(
            "frame-ancestors 'self'; sandbox", "frame-ancestors 'none'")
        return response


def _public_html(config: Config, rendered: RenderedDigest, digest_id: int, key: bytes) -> str:
    """A sent digest with no subscriber in it: a neutral greeting, and the subscribe page
    where the unsubscribe link was."""
    base = config.email.base_url.rstrip("/")
    html, _ = personalise(rendered, name="reader", email="",
                          unsubscribe_url=f"{base}/subscribe",
                          web_url=f"{base}/archive/{digest_id}/?k={archive_token(key, digest_id)}")
    return html.replace(">Unsubscribe</a> with one click", ">Subscribe</a> to get it by email")


def _stored_or_404(store: Store, digest_id: int) -> StoredDigest:
    stored = store.get_digest(digest_id)
    if stored is None:
        abort(404)
    return stored


def _archive(store: Store, limit: int) -> list[dict[str, Any]]:
    rows = []
    for stored, counts in store.recent_digests(limit):
        rows.append({"id": stored.id, "created_at": stored.created_at, "status": stored.status,
                     "subject": stored.subject, "articles": len(store.digest_articles(stored.id)),
                     "recipients": counts.total, "sent": counts.sent, "failed": counts.failed})
    return rows


def _editor_email(config: Config, name: str) -> str:
    editor = config.editors.get(name)
    return editor.email if editor and editor.email else ""


def _safe_next(target: str) -> str:
    """Only paths of this site's editor pages: never an open redirect."""
    return target if target.startswith("/editor/") and "//" not in target else ""


def _done(action: str) -> str:
    return {"exclude": "Article excluded.", "include": "Article included again.",
            "pin": "Article pinned to the top.", "unpin": "Article unpinned.",
            "up": "Article moved up.", "down": "Article moved down.",
            "edit": "Changes saved.", "restore": "Generated headline and summary restored."
            }.get(action, "Done.")
