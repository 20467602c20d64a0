"""What ships with the package: the email and web page templates, the stylesheet, the demo's
config.toml and its sample subscriber list. A wheel carries them under digest/bundled/
(copied from the top of the repository at build time); a source checkout or an editable
install reads them where they are in the repository."""

from __future__ import annotations

from pathlib import Path

from digest.errors import ConfigError

PACKAGE = Path(__file__).resolve().parent
CHECKOUT = PACKAGE.parent
# (name as shipped in the wheel, path in the repository)
FILES = {
    "templates": "templates",
    "config.toml": "config.toml",
    "subscribers.csv": "subscribers/subscribers.csv",
}


def bundled(name: str) -> Path:
    """The shipped file or folder `name` ('templates', 'config.toml', 'subscribers.csv')."""
    for candidate in (PACKAGE / "bundled" / name, CHECKOUT / FILES[name]):
        if candidate.exists():
            return candidate
    raise ConfigError(f"this installation of spacecraft-digest is incomplete: {name} is "
                      f"missing from {PACKAGE / 'bundled'}; reinstall the package")


def templates() -> Path:
    """The bundled templates folder (digest.html, digest.txt, email.css, web/)."""
    return bundled("templates")
