"""What every view of one app shares: the config, the open state database, the signing
key, the page templates and the rate limits, kept in `app.extensions`."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import jinja2
from flask import Response, current_app, make_response, session

from digest.config import Config
from digest.slots import cadence
from digest.state import State
from digest.web.security import RateLimit, csrf_token

SUBSCRIBE_LIMIT = (5, 600.0)  # attempts per client address per window (seconds)
LOGIN_LIMIT = (10, 600.0)


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
    login_limit: RateLimit
    extras: dict[str, Any]

    @classmethod
    def create(cls, config: Config, state: State, keys: tuple[bytes, ...],
               pages: jinja2.Environment) -> WebContext:
        return cls(config=config, state=state, key=keys[0], keys=keys, pages=pages,
                   editor_secret=os.environ.get(config.web.secret_env, ""),
                   subscribe_limit=RateLimit(*SUBSCRIBE_LIMIT),
                   login_limit=RateLimit(*LOGIN_LIMIT), extras={})

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


def web() -> WebContext:
    """The context of the app handling this request."""
    context = current_app.extensions["digest"]
    assert isinstance(context, WebContext)
    return context
