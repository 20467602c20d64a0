"""The editor's desk: /editor/ shows the next digest as subscribers will get it and lets a
logged-in editor exclude, pin, move and rewrite articles, write an opening note, send a
test, approve or hold; /editor/archive/ lists past digests with the exact HTML sent."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Response, abort, make_response, redirect, request, session
from werkzeug.security import check_password_hash, generate_password_hash

from digest import editorial, pipeline
from digest.clock import utc_now
from digest.errors import DigestError, EditorialError, SubscriberError
from digest.report import audience, digest_report
from digest.slots import next_fire_after
from digest.subscribers import read_subscriber_file
from digest.web.archive import public_html, recent_digests, stored_digest
from digest.web.charts import Bar, bar_chart, column_chart
from digest.web.context import WebContext, web
from digest.web.desk import DraftDesk
from digest.web.security import DESK_CSP, EMAIL_CSP, require_csrf

log = logging.getLogger(__name__)

_DUMMY_HASH = generate_password_hash("not a password of anyone's")
FEW_ARTICLES = 3  # fewer than this and the desk warns before approving or testing

desk_pages = Blueprint("editor", __name__, url_prefix="/editor")


def desk() -> DraftDesk:
    """The app's draft desk."""
    found = web().extras["desk"]
    assert isinstance(found, DraftDesk)
    return found


def page(name: str, status: int = 200, **context: Any) -> Response:
    """An editor page, with the logged-in editor's name and empty notices by default."""
    w = web()
    response = w.page(name, status, editor=session.get("editor") if w.editor_secret else None,
                      **{"error": "", "message": "", "next": "", **context})
    response.headers["Content-Security-Policy"] = DESK_CSP
    return response


def email_frame(html: str) -> Response:
    """The email itself, for the sandboxed frame on the desk and in the archive."""
    response = make_response(html, 200)
    response.headers["Content-Type"] = "text/html; charset=utf-8"
    response.headers["Content-Security-Policy"] = EMAIL_CSP
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    return response


def _desk_off() -> Response:
    return page("editor/off.html", 503, secret_env=web().config.web.secret_env)


def _logged_in(w: WebContext) -> bool:
    # Cookies are signed, not stored: the server-side session record lets logout (and
    # expiry) end a session even for someone who kept a copy of the cookie.
    editor = session.get("editor")
    record = w.state.editorial.session(str(session.get("sid", "")))
    return editor in w.config.editors and record is not None and \
        record.editor == editor and record.expires > utc_now()


def editor_only(view: Callable[..., Response]) -> Callable[..., Response]:
    """Logged-in editors only; every POST also needs its CSRF token."""
    @wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Response:
        w = web()
        if not w.editor_secret:
            return _desk_off()
        if not _logged_in(w):
            if request.method == "POST":
                abort(403)
            return redirect("/editor/login?" + urlencode({"next": request.path}))  # type: ignore[return-value]
        if request.method == "POST":
            require_csrf(w.key, w.csrf_binding())
        return view(*args, **kwargs)

    return guarded


def back(message: str = "", error: str = "") -> Response:
    """To the desk, with a notice, at the article acted on (the page does not jump)."""
    session["flash"] = {"message": message, "error": error}
    view = request.args.get("view", "")
    target = "/editor/?view=phone" if view == "phone" else "/editor/"
    at = request.form.get("at", "")
    return redirect(target + (f"#a-{at}" if at.isdigit() else "#top"))  # type: ignore[return-value]


@desk_pages.get("/login")
def login() -> Response:
    if not web().editor_secret:
        return _desk_off()
    return page("editor/login.html", next=_safe_next(request.args.get("next", "")))


@desk_pages.post("/login")
def login_post() -> Response:
    w = web()
    if not w.editor_secret:
        return _desk_off()
    require_csrf(w.key, w.csrf_binding())
    name, client = request.form.get("name", "").strip()[:64], request.remote_addr or "?"
    wait = w.logins.wait(name, client)
    if wait or not w.login_limit.allow(client):
        return page("editor/login.html", 429, error="Too many attempts; wait "
                    f"{max(1, round(wait))} s." if wait else "Too many attempts; wait a "
                    "few minutes.")
    account = w.config.editors.get(name)
    # Check a hash even for an unknown name, so timing does not tell names apart.
    ok = check_password_hash(account.password_hash if account else _DUMMY_HASH,
                             request.form.get("password", ""))
    if not (account and ok):
        w.logins.failed(name, client)
        log.warning("editor login refused for %r from %s", name[:40], client)
        return page("editor/login.html", 401, error="Wrong name or password.")
    w.logins.succeeded(name, client)
    now = utc_now()
    session.clear()
    session.permanent = True
    session["editor"] = name
    session["sid"] = w.state.editorial.open_session(
        name, now + timedelta(hours=w.config.web.session_hours), now)
    log.info("editor %s logged in", name)
    return redirect(_safe_next(request.form.get("next", "")) or "/editor/")  # type: ignore[return-value]


@desk_pages.post("/logout")
@editor_only
def logout() -> Response:
    log.info("editor %s logged out", session.get("editor"))
    web().state.editorial.end_session(str(session.get("sid", "")))
    session.clear()
    return redirect("/editor/login")  # type: ignore[return-value]


@desk_pages.get("/")
@editor_only
def next_digest() -> Response:
    w = web()
    try:
        draft = desk().draft()
    except DigestError as exc:
        return page("editor/desk.html", 500, draft=None, problem=str(exc), **_marks())
    read_subscriber_file(w.config, w.state.subscribers, utc_now())
    included = {item.article.url for item in draft.digest.items}
    edits = w.state.editorial.article_edits()
    flash = session.pop("flash", None) or {}
    spam = next((c for c in draft.checks.checks if c.name == "spam"), None)
    return page(
        "editor/desk.html", draft=draft, digest=draft.digest, subject=draft.rendered.subject,
        preheader=draft.digest.preheader, few=0 < len(draft.digest.items) < FEW_ARTICLES,
        spam_line=spam.detail if spam is not None and spam.status in ("ok", "skipped") else "",
        warnings=[line for c, line in zip(draft.checks.checks, draft.checks.lines(),
                                          strict=True) if c.status not in ("ok", "skipped")],
        size=len(draft.rendered.html.encode("utf-8")),
        recipients=w.state.subscribers.count_by_status().get("active", 0),
        next_send=next_fire_after(w.config, utc_now()), timezone=w.config.schedule.timezone,
        excluded=[a for a in draft.candidates if a.url not in included
                  and (e := edits.get(a.url)) is not None and e.excluded],
        edits=edits, phone=request.args.get("view") == "phone",
        default_test_address=_editor_email(str(session.get("editor", ""))),
        message=flash.get("message", ""), error=flash.get("error", ""), **_marks())


def _marks() -> dict[str, Any]:
    w = web()
    note = w.state.editorial.note()
    return {"note": note.text if note else "", "hold": w.state.editorial.hold(),
            "approval": w.state.editorial.approval(), "waiting": w.state.editorial.waiting(),
            "last_approval": w.state.editorial.last_used_approval(),
            "require_approval": w.config.schedule.require_approval}


@desk_pages.get("/desk.js")
def desk_script() -> Response:
    pages = web().pages
    assert pages.loader is not None
    response = make_response(pages.loader.get_source(pages, "editor/desk.js")[0])
    response.headers["Content-Type"] = "text/javascript; charset=utf-8"
    response.headers["Cache-Control"] = "max-age=300"
    return response


@desk_pages.post("/withdraw")
@editor_only
def withdraw() -> Response:
    withdrawn = editorial.withdraw(web().state, utc_now())
    return back(message="Approval withdrawn: the next scheduled digest needs a new one."
                if withdrawn else "There was no approval to withdraw.")


@desk_pages.get("/draft.html")
@editor_only
def draft_html() -> Response:
    return email_frame(desk().draft().html)


@desk_pages.post("/article")
@editor_only
def article() -> Response:
    url, action, who = request.form.get("url", ""), request.form.get("action", ""), \
        str(session["editor"])
    try:
        done = desk().edit_article(
            url, action, who, headline=" ".join(request.form.get("headline", "").split())[:300],
            summary=" ".join(request.form.get("summary", "").split())[:3000])
    except ValueError:
        abort(400)
    except DigestError as exc:
        return back(error=str(exc))
    log.info("editor %s: %s %s", who, action, url)
    return back(message=done + desk().withdraw_approval())


@desk_pages.post("/note")
@editor_only
def note() -> Response:
    text = request.form.get("note", "").replace("\r\n", "\n").strip()[:2000]
    web().state.editorial.set_note(text, str(session["editor"]), utc_now())
    return back(message=("Note saved." if text else "Note removed.")
                + desk().withdraw_approval())


@desk_pages.post("/refresh")
@editor_only
def refresh() -> Response:
    desk().draft(refresh=True)
    return back(message="Sources read again.")


@desk_pages.post("/send-test")
@editor_only
def send_test() -> Response:
    address = request.form.get("address", "").strip() or \
        _editor_email(str(session["editor"]))
    draft = desk().draft()
    if not draft.digest.items:
        return back(error="The draft has no articles: there is nothing to test yet.")
    try:
        reply, _ = pipeline.send_test(web().config, address, rendered=draft.rendered,
                                      articles=len(draft.digest.items))
    except SubscriberError:
        return back(error=f"{address!r} is not an email address.")
    except DigestError as exc:
        return back(error=f"The test could not be sent: {exc}")
    log.info("editor %s sent a test to %s", session["editor"], address)
    return back(message=f"Test sent to {address} ({reply[:60]}).")


@desk_pages.post("/approve")
@editor_only
def approve() -> Response:
    draft = desk().draft()
    try:
        editorial.approve(web().state, str(session["editor"]),
                          [item.article.url for item in draft.digest.items], utc_now())
    except EditorialError:
        return back(error="Nothing to approve: the draft has no articles.")
    return back(message="Approved: the next scheduled digest will go out.")


@desk_pages.post("/hold")
@editor_only
def hold() -> Response:
    editorial.put_on_hold(web().state, str(session["editor"]),
                          " ".join(request.form.get("reason", "").split())[:300], utc_now())
    return back(message="On hold: the next scheduled digest will be skipped.")


@desk_pages.post("/release")
@editor_only
def release() -> Response:
    editorial.release(web().state, utc_now())
    return back(message="Hold lifted.")


@desk_pages.get("/archive/")
@editor_only
def archive() -> Response:
    return page("editor/archive.html", digests=recent_digests(web().state, limit=200))


@desk_pages.get("/archive/<int:digest_id>/")
@editor_only
def archive_digest(digest_id: int) -> Response:
    w = web()
    stored = stored_digest(w.state, digest_id) or abort(404)
    found = digest_report(w.state, digest_id) or abort(404)
    points = audience(w.state)
    return page("editor/archive_digest.html", stored=stored, report=found,
                counts=w.state.ledger.delivery_counts(digest_id),
                articles=w.state.ledger.digest_articles(digest_id),
                clicks_chart=bar_chart(f"Clicks per article, digest {digest_id}", [
                    Bar(a.title, a.clicks.people, a.clicks.automated)
                    for a in found.articles]),
                audience_chart=column_chart("Active subscribers each digest reached", [
                    Bar(f"{p.at:%-d %b %Y}", p.recipients) for p in points]))


@desk_pages.get("/archive/<int:digest_id>/email.html")
@editor_only
def archive_email(digest_id: int) -> Response:
    w = web()
    stored = stored_digest(w.state, digest_id) or abort(404)
    targets = [a.target for a in w.state.ledger.digest_articles(digest_id)]
    return email_frame(public_html(w.config, stored.rendered, digest_id, w.key, targets))


def _editor_email(name: str) -> str:
    editor = web().config.editors.get(name)
    return editor.email if editor and editor.email else ""


def _safe_next(target: str) -> str:
    """Only paths of this site's editor pages: never an open redirect."""
    if any(ord(c) < 32 or ord(c) == 127 for c in target):
        return ""  # a CR or LF would end the Location header
    return target if target.startswith("/editor/") and "//" not in target else ""
