"""HMAC-signed tokens: per-subscriber unsubscribe and confirmation links, web-version
links and CSRF nonces. The key comes from `digest.keys`."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets


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
