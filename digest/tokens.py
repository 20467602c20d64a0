"""HMAC-signed per-subscriber tokens for unsubscribe links. The key comes from an
environment variable; without it, a random key kept beside the state database is used
(and a warning says so), so links from earlier digests keep working."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
from pathlib import Path

log = logging.getLogger(__name__)


def signing_key(env_name: str, state_dir: Path) -> bytes:
    """The signing key from $env_name, else from (or newly into) state_dir/signing.key."""
    value = os.environ.get(env_name, "")
    if value:
        return value.encode("utf-8")
    key_file = state_dir / "signing.key"
    if key_file.exists():
        return key_file.read_bytes().strip()
    log.warning("%s is not set; unsubscribe links are signed with a generated key in %s",
                env_name, key_file)
    state_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32).encode("ascii")
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key)
    return key


def make_token(key: bytes, purpose: str, email: str) -> str:
    """A URL-safe token binding an address to a purpose ('unsubscribe', …)."""
    payload = _b64(email.strip().casefold().encode("utf-8"))
    return f"{payload}.{_signature(key, purpose, payload)}"


def read_token(key: bytes, purpose: str, token: str) -> str | None:
    """The address a genuine token was made for, or None for a forged or damaged one."""
    payload, _, signature = token.partition(".")
    if not payload or not hmac.compare_digest(signature, _signature(key, purpose, payload)):
        return None
    try:
        return base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None


def _signature(key: bytes, purpose: str, payload: str) -> str:
    mac = hmac.new(key, f"{purpose}:{payload}".encode(), hashlib.sha256).digest()
    return _b64(mac[:20])


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def make_timed_token(key: bytes, purpose: str, email: str, issued: int) -> str:
    """A token like make_token's that also carries when it was issued (Unix seconds)."""
    payload = _b64(f"{issued}:{email.strip()}".encode())
    return f"{payload}.{_signature(key, purpose, payload)}"


def read_timed_token(key: bytes, purpose: str, token: str, *, now: int,
                     max_age: int) -> str | None:
    """The address of a genuine, unexpired timed token, else None."""
    payload, _, signature = token.partition(".")
    if not payload or not hmac.compare_digest(signature, _signature(key, purpose, payload)):
        return None
    try:
        issued, _, email = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)) \
            .decode("utf-8").partition(":")
        age = now - int(issued)
    except (ValueError, UnicodeDecodeError):
        return None
    return email if 0 <= age <= max_age and email else None


def make_csrf_token(key: bytes) -> str:
    """A fresh signed nonce for a form (checked against the same value in a cookie)."""
    nonce = _b64(secrets.token_bytes(18))
    return f"{nonce}.{_signature(key, 'csrf', nonce)}"


def csrf_ok(key: bytes, form_value: str, cookie_value: str) -> bool:
    """The form's token is genuine and matches the cookie set with the form."""
    nonce, _, signature = form_value.partition(".")
    return bool(nonce) and hmac.compare_digest(form_value, cookie_value) and \
        hmac.compare_digest(signature, _signature(key, "csrf", nonce))
