"""HMAC-signed tokens for the links we mail and the forms we serve. A subscriber's links
carry their opaque token id (a random value stored with them), never their address.

    s.<token id>.<signature>             unsubscribe
    c.<token id>.<issued>.<signature>    confirm a subscription (expires)

Tokens made before token ids existed (the address in base64 and a signature) are still
read, so links in digests mailed earlier keep working. Every read accepts a signature by
the current key or any previous one (`digest.keys`), so a rotation breaks no link."""

from __future__ import annotations

import base64
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

UNSUBSCRIBE, CONFIRM = "unsubscribe", "confirm"
TOKEN_ID_BYTES = 12
TEST_TOKEN_ID = "test-send"  # the links of a test sent to someone not on the list


@dataclass(frozen=True)
class TokenHolder:
    """Whom a genuine token names: a subscriber's token id, or (old links) an address."""

    token_id: str = ""
    email: str = ""


def new_token_id() -> str:
    """A fresh opaque identifier for a subscriber's links."""
    return secrets.token_urlsafe(TOKEN_ID_BYTES)


def unsubscribe_token(key: bytes, token_id: str) -> str:
    """The token of a subscriber's one-click unsubscribe link."""
    return f"s.{token_id}.{_signature(key, UNSUBSCRIBE, token_id)}"


def read_unsubscribe(keys: Sequence[bytes], token: str) -> TokenHolder | None:
    """Whom a genuine unsubscribe token names, or None for a forged or damaged one."""
    parts = token.split(".")
    if len(parts) == 3 and parts[0] == "s" and _signed(keys, UNSUBSCRIBE, parts[1], parts[2]):
        return TokenHolder(token_id=parts[1])
    if len(parts) == 2 and _signed(keys, UNSUBSCRIBE, parts[0], parts[1]):
        email = _unb64(parts[0])
        return TokenHolder(email=email) if email and "@" in email else None
    return None


def confirm_token(key: bytes, token_id: str, issued: int) -> str:
    """The token of a confirmation link issued at `issued` (Unix seconds)."""
    payload = f"{token_id}.{issued}"
    return f"c.{payload}.{_signature(key, CONFIRM, payload)}"


def read_confirm(keys: Sequence[bytes], token: str, *, now: int,
                 max_age: int) -> TokenHolder | None:
    """Whom a genuine, unexpired confirmation token names, else None."""
    parts = token.split(".")
    if len(parts) == 4 and parts[0] == "c" and parts[2].isdigit() and \
            _signed(keys, CONFIRM, f"{parts[1]}.{parts[2]}", parts[3]):
        return TokenHolder(token_id=parts[1]) if 0 <= now - int(parts[2]) <= max_age else None
    if len(parts) == 2 and _signed(keys, CONFIRM, parts[0], parts[1]):
        issued, _, email = _unb64(parts[0]).partition(":")
        if issued.isdigit() and email and 0 <= now - int(issued) <= max_age:
            return TokenHolder(email=email)
    return None


def make_token(key: bytes, purpose: str, value: str) -> str:
    """A URL-safe token binding a value to a purpose (the value is readable in it)."""
    payload = _b64(value.strip().casefold().encode("utf-8"))
    return f"{payload}.{_signature(key, purpose, payload)}"


def legacy_timed_token(key: bytes, purpose: str, email: str, issued: int) -> str:
    """A confirmation token as versions before token ids made them (tests of old links)."""
    payload = _b64(f"{issued}:{email.strip()}".encode())
    return f"{payload}.{_signature(key, purpose, payload)}"


def signature(key: bytes, purpose: str, payload: str) -> str:
    """The URL-safe HMAC of a payload for one purpose."""
    return _signature(key, purpose, payload)


def verify(keys: Sequence[bytes], purpose: str, payload: str, sent: str) -> bool:
    """Whether `sent` is the signature of the payload by one of the keys."""
    return _signed(keys, purpose, payload, sent)


def _signed(keys: Sequence[bytes], purpose: str, payload: str, sent: str) -> bool:
    if not payload or not sent:
        return False
    wanted = sent.encode("utf-8", "surrogatepass")
    return any(hmac.compare_digest(wanted, _signature(key, purpose, payload).encode())
               for key in keys)


def _signature(key: bytes, purpose: str, payload: str) -> str:
    message = f"{purpose}:{payload}".encode("utf-8", "surrogatepass")
    # hmac.digest: the one-shot C path, a tenth of hmac.new's cost per message signed
    return _b64(hmac.digest(key, message, "sha256")[:20])


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(payload: str) -> str:
    try:
        return base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return ""
