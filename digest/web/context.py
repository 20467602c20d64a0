"""What every view of one app shares: the config, the open state database, the signing
key, the page templates and the rate limits, kept in `app.extensions`."""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from typing import Any

import jinja2
from flask import Response, current_app, make_response, session

from digest.config import Config
from digest.slots import cadence
from digest.state import State
from digest.tracking import RepeatFilter
from digest.web.security import LoginThrottle, RateLimit, csrf_token

log = logging.getLogger(__name__)

SIGNUP_POLL_SECONDS = 5.0
SUBSCRIBE_LIMIT = (5, 600.0)  # attempts per client address per window (seconds)
LOGIN_LIMIT = (60, 600.0)  # tries of any names from one client; a name has its own throttle


@dataclass
class WebContext:
    """One app's shared objects."""

    config: Config
    state: State
    key: bytes
    keys: tuple[bytes, ...]  # the key, and previous ones whose links still verify
    pages: jinja2.Environment
    editor_secret: str
    subscribe_limit: RateLimit
    login_limit: RateLimit  # attempts per client, whatever the names
    logins: LoginThrottle
    signups: SignupWorker
    repeats: RepeatFilter  # clicks and opens counted in the last few minutes
    extras: dict[str, Any]

    @classmethod
    def create(cls, config: Config, state: State, keys: tuple[bytes, ...],
               pages: jinja2.Environment) -> WebContext:
        return cls(config=config, state=state, key=keys[0], keys=keys, pages=pages,
                   editor_secret=os.environ.get(config.web.secret_env, ""),
                   subscribe_limit=RateLimit(*SUBSCRIBE_LIMIT),
                   login_limit=RateLimit(*LOGIN_LIMIT), logins=LoginThrottle(),
                   signups=SignupWorker(config, state, keys[0]), repeats=RepeatFilter(),
                   extras={})

    def csrf_binding(self) -> str:
        """What this request's CSRF tokens are bound to: the editor's session, if any."""
        return str(session.get("sid", "")) if self.editor_secret else ""

    def page(self, name: str, status: int = 200, **context: Any) -> Response:
        """A page from templates/web/, with the CSRF token its forms need."""
        body = self.pages.get_template(name).render(
            title=self.config.digest.title, postal_address=self.config.email.postal_address,
            cadence=cadence(self.config.schedule.cron)[0],
            category=self.config.digest.category,
            csrf_token=csrf_token(self.key, self.csrf_binding()), **context)
        response = make_response(body, status)
        response.headers["Content-Type"] = "text/html; charset=utf-8"
        return response


class SignupWorker:
    """The web process's own worker: mails the confirmations of queued subscribe requests,
    woken by the form and every few seconds (requests left by a process that stopped)."""

    def __init__(self, config: Config, state: State, key: bytes) -> None:
        self.config, self.state, self.key = config, state, key
        self._wake = threading.Event()
        self._idle = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="signups", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._idle.clear()
        self._wake.set()

    def settle(self, timeout: float = 30.0) -> bool:
        """Wait until every queued request has been handled (tests, shutdown)."""
        self.wake()
        return self._idle.wait(timeout)

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _run(self) -> None:
        from digest import signup

        while not self._stop.is_set():
            self._wake.wait(SIGNUP_POLL_SECONDS)
            self._wake.clear()
            try:
                while signup.handle_signups(self.config, self.state, self.key):
                    pass
            except Exception:  # the worker must outlive a database hiccup
                log.exception("subscribe requests not handled this time")
            self._idle.set()


def web() -> WebContext:
    """The context of the app handling this request."""
    context = current_app.extensions["digest"]
    assert isinstance(context, WebContext)
    return context
