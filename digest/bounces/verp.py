"""VERP: each message's envelope sender names its delivery, so a bounce maps to exactly one
(digest, subscriber) even when the report quotes nothing useful. The local part is the
return path's, then `+`, the delivery id in base 36 and a signature over it, all in lower
case (some relays lower-case local parts): `bounces+2s-k3j5xq7m2a@news.example`."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Sequence

SIGNATURE_CHARS = 10
ADDRESS = re.compile(r"^(?P<local>[^+@]+)\+(?P<id>[0-9a-z]{1,13})-(?P<sig>[a-z2-7]{10})"
                     r"@(?P<domain>[^@]+)$")


def verp_address(return_path: str, delivery_id: int, key: bytes) -> str:
    """The envelope sender for one delivery."""
    local, _, domain = return_path.rpartition("@")
    local = local.split("+", 1)[0]
    tag = _base36(delivery_id)
    return f"{local}+{tag}-{_signature(key, tag)}@{domain}"


def delivery_of(address: str, keys: Sequence[bytes]) -> int | None:
    """The delivery a VERP address names, or None when it is not one of ours or its
    signature is wrong (forged or mangled)."""
    match = ADDRESS.match(address.strip().strip("<>").lower())
    if match is None:
        return None
    tag, sent = match.group("id"), match.group("sig")
    if not any(hmac.compare_digest(sent, _signature(key, tag)) for key in keys):
        return None
    return int(tag, 36)


def looks_like_verp(address: str) -> bool:
    """Whether an address has the shape of one of our VERP addresses (signed or not)."""
    return ADDRESS.match(address.strip().strip("<>").lower()) is not None


def _signature(key: bytes, tag: str) -> str:
    mac = hmac.new(key, f"verp:{tag}".encode(), hashlib.sha256).digest()
    return base64.b32encode(mac).decode("ascii").lower()[:SIGNATURE_CHARS]


def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    text = ""
    while True:
        number, rest = divmod(number, 36)
        text = digits[rest] + text
        if number == 0:
            return text
