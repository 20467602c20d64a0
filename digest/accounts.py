"""Editor accounts in config.toml: written with tomlkit so the operator's comments and
layout survive, and only as password hashes (werkzeug's scrypt)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import tomlkit
from werkzeug.security import generate_password_hash

from digest.config import email_problem, load_config
from digest.errors import ConfigError

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MIN_PASSWORD = 10


def add_editor(config_path: Path, name: str, password: str, email: str = "") -> None:
    """Add or update [editors.NAME] with a hash of the password."""
    if not NAME.match(name):
        raise ConfigError(f"editor name {name!r}: use letters, digits, '.', '_' or '-'")
    if len(password) < MIN_PASSWORD:
        raise ConfigError(f"editor {name}: the password needs at least {MIN_PASSWORD} "
                          "characters")
    if email and email_problem(email):
        raise ConfigError(f"editor {name}: --email: {email_problem(email)}")
    document = _read(config_path)
    editors = document.setdefault("editors", tomlkit.table())
    account = tomlkit.table()
    account["password_hash"] = generate_password_hash(password)
    previous = editors.get(name)
    kept_email = previous.get("email", "") if isinstance(previous, dict) else ""
    if email or kept_email:
        account["email"] = email or kept_email
    editors[name] = account
    _write(config_path, document)


def remove_editor(config_path: Path, name: str) -> None:
    """Delete [editors.NAME]."""
    document = _read(config_path)
    editors = document.get("editors")
    if not editors or name not in editors:
        raise ConfigError(f"{config_path}: [editors] {name}: no such editor")
    del editors[name]
    _write(config_path, document)


def _read(config_path: Path) -> tomlkit.TOMLDocument:
    load_config(config_path)  # refuse to touch a file that is already broken
    return tomlkit.parse(config_path.read_text(encoding="utf-8"))


def _write(config_path: Path, document: tomlkit.TOMLDocument) -> None:
    """Rewrite the file atomically, keeping its mode (it holds password hashes: a 0600 file
    stays 0600) and never wider than 0640."""
    tmp = config_path.with_name(config_path.name + ".tmp")
    mode = config_path.stat().st_mode & 0o640
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(tomlkit.dumps(document))
    os.chmod(tmp, mode)
    os.replace(tmp, config_path)
    load_config(config_path)
