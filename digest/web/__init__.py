"""The web app (`digest serve`): subscribe with double opt-in, confirm, unsubscribe with
one click (RFC 8058), the editor's desk and the archive. Plain server-rendered pages from
templates/web/, no JavaScript required, one header and CSRF policy for every page."""

from __future__ import annotations

import logging
from datetime import timedelta

import jinja2
from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from digest import bundled
from digest.config import Config
from digest.errors import PortBusy
from digest.keys import verification_keys
from digest.state import open_state
from digest.web.context import WebContext, web
from digest.web.desk import DraftDesk
from digest.web.editor import desk_pages
from digest.web.proxy import TrustedProxies, networks
from digest.web.public import public
from digest.web.security import apply_headers
from digest.web.tracked import tracked

log = logging.getLogger(__name__)

ERROR_PAGES = {
    400: ("This request cannot be answered", "Something in it was not understood."),
    403: ("This form has expired", "Please reload the page and try again."),
    404: ("Page not found", ""),
    405: ("This request cannot be answered", "That method is not allowed here."),
}


def create_app(config: Config) -> Flask:
    """The Flask application for one configuration."""
    app = Flask(__name__)
    app.wsgi_app = TrustedProxies(  # type: ignore[method-assign]
        app.wsgi_app, networks(config.web.trusted_proxies), config.web.proxy_hops)
    state = open_state(config)
    pages = web_pages(config)
    context = WebContext.create(config, state, verification_keys(config), pages)
    context.extras["desk"] = DraftDesk(config, state)
    context.signups.start()
    app.extensions["digest"] = context
    _editor_sessions(app, context)
    app.register_blueprint(public)
    app.register_blueprint(desk_pages)
    app.register_blueprint(tracked)
    app.register_error_handler(HTTPException, _error_page)
    secure = config.email.base_url.startswith("https://")

    @app.after_request
    def headers(response: Response) -> Response:
        return apply_headers(response, secure or request.is_secure, context.key)

    return app


def web_pages(config: Config) -> jinja2.Environment:
    """The page templates: the operator's templates/web/ first, then the bundled ones."""
    folders = [folder / "web" for folder in (config.template_folder, bundled.templates())
               if folder is not None]
    return jinja2.Environment(
        loader=jinja2.ChoiceLoader([jinja2.FileSystemLoader(str(f)) for f in folders]),
        autoescape=True, undefined=jinja2.StrictUndefined)


def _editor_sessions(app: Flask, context: WebContext) -> None:
    if context.editor_secret:
        app.secret_key = context.editor_secret
    else:
        log.warning("editor pages are off: set %s to a long random value to turn them on",
                    context.config.web.secret_env)
    app.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
                      SESSION_COOKIE_NAME="digest_editor",
                      SESSION_COOKIE_SECURE=context.config.email.base_url.startswith("https://"),
                      PERMANENT_SESSION_LIFETIME=timedelta(hours=context.config.web.session_hours))


def _error_page(error: HTTPException) -> Response:
    code = error.code or 500
    heading, text = ERROR_PAGES.get(code, (error.name, ""))
    return web().page("message.html", code, heading=heading, text=text)


def serve(config: Config, host: str, port: int) -> None:
    """Run the app under waitress (a production WSGI server) until interrupted."""
    import signal
    import sys

    from waitress.server import create_server

    app = create_app(config)
    context = web_context(app)
    try:
        server = create_server(app, host=host, port=port, **waitress_options())
    except (OSError, ValueError) as exc:
        context.signups.stop()
        context.state.close()
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise PortBusy(f"digest serve: cannot listen on {host}:{port} ({reason})") from None
    # SIGTERM (systemd stop) ends it like Ctrl-C, with exit status 0.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(0))
    log.info("serving %s on http://%s:%s/ (public URL %s)", config.digest.title, host,
             getattr(server, "effective_port", port), config.email.base_url)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
        context.signups.stop()
        context.state.close()
    log.info("web app stopped")


def waitress_options() -> dict[str, object]:
    """How waitress runs the app. It passes the X-Forwarded-* headers on untouched: the
    app's TrustedProxies believes them from [web] trusted_proxies alone (waitress can trust
    only one address, and drops them for everyone otherwise)."""
    return {"threads": 8, "ident": "digest", "clear_untrusted_proxy_headers": False}


def web_context(app: Flask) -> WebContext:
    """The shared objects of an app made by create_app (tests close its state with it)."""
    context = app.extensions["digest"]
    assert isinstance(context, WebContext)
    return context
