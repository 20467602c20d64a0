"""Click and open counts, privacy first. A tracked link is `base_url/c/<token>`: the token
names a digest and an article position, signed with the link key, and names the reader
only when the operator turned [tracking] per_subscriber on. Which requests are people and
which are link scanners, and which repeat an earlier click, is decided here. No I/O."""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

from digest.models import TrackingMode
from digest.tokens import signature, verify

CLICK, READER_CLICK, OPEN = "click", "reader-click", "open"
# A reader who clicks the same story twice within this long counts once.
REPEAT_WINDOW_SECONDS = 600.0
# Mail security gateways open every link of a message as it arrives; a person does not
# read and click within this long of delivery.
PREFETCH_SECONDS = 30.0
MAX_REMEMBERED = 100_000  # repeat-window entries kept in memory at most
# Counts one client address may add within the repeat window: more than a person clicks
# through one digest, far less than a script inflating the figures (the redirect itself
# is always answered).
CLIENT_BUDGET = 60
TOKEN_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
# User agents of link scanners, crawlers, previewers and HTTP libraries: no person reads
# through them. (Image proxies such as Gmail's are not here: they load images, not links.)
AUTOMATED_AGENTS = re.compile(
    r"bot\b|bot/|crawl|spider|slurp|preview|scanner|scan/|python|curl/|wget/|go-http|"
    r"java/|libwww|httpclient|okhttp|axios|node-fetch|headless|phantomjs|barracuda|"
    r"mimecast|proofpoint|urldefense|safelinks|symantec|forcepoint|trendmicro|"
    r"trend micro|fortinet|fortiguard|sophos|cisco|ironport|zscaler|checkpoint|"
    r"microsoft office existence|ms-office|skypeuripreview|outlook-ios-linkpreview|"
    r"facebookexternalhit|slackbot|discordbot|whatsapp|telegrambot|linkchecker",
    re.IGNORECASE)
GIF_PIXEL = (b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01"
             b"\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")


@dataclass(frozen=True)
class TrackedLink:
    """What a genuine token names: a digest, an article position (None for the open
    image), and the reader's token id when the digest counts per reader."""

    digest_id: int
    position: int | None
    reader: str = ""


def click_token(key: bytes, digest_id: int, position: int, reader: str = "") -> str:
    """The token of one article's tracked link in one digest (for one reader).

    Without a reader the signature covers digest and position. With one it covers digest
    and reader only, so a message's twenty links cost one signature, not twenty: changing
    the position of a genuine token still leads only to that digest's own articles, and
    counts for the same reader, who could have clicked them anyway."""
    if not reader:
        payload = f"{digest_id}.{position}"
        return f"k.{payload}.{signature(key, CLICK, payload)}"
    return reader_click_token(digest_id, position, reader,
                              reader_signature(key, digest_id, reader))


def reader_signature(key: bytes, digest_id: int, reader: str) -> str:
    """The signature every per-reader click token of one reader in one digest carries."""
    return signature(key, READER_CLICK, f"{digest_id}.{reader}")


def reader_click_token(digest_id: int, position: int, reader: str, signed: str) -> str:
    """A per-reader click token, from the reader's signature (see click_token)."""
    return f"k.{digest_id}.{position}.{reader}.{signed}"


def open_token(key: bytes, digest_id: int, reader: str = "") -> str:
    """The token of a digest's open image (for one reader)."""
    payload = f"{digest_id}" + (f".{reader}" if reader else "")
    return f"o.{payload}.{signature(key, OPEN, payload)}"


def read_click(keys: Sequence[bytes], token: str) -> TrackedLink | None:
    """The link a genuine click token names, or None for a forged, damaged or foreign one."""
    parts = token.split(".")
    if parts[0] != "k" or len(parts) not in (4, 5):
        return None
    numbers, reader = parts[1:3], parts[3] if len(parts) == 5 else ""
    if not all(_number(n) for n in numbers) or (reader and not TOKEN_ID.fullmatch(reader)):
        return None
    signed = f"{numbers[0]}.{reader}" if reader else ".".join(numbers)
    if not verify(keys, READER_CLICK if reader else CLICK, signed, parts[-1]):
        return None
    return TrackedLink(int(numbers[0]), int(numbers[1]), reader)


def read_open(keys: Sequence[bytes], token: str) -> TrackedLink | None:
    """The digest (and reader) a genuine open token names, else None."""
    parts = token.split(".")
    if parts[0] != "o" or len(parts) not in (3, 4) or not _number(parts[1]):
        return None
    reader = parts[2] if len(parts) == 4 else ""
    if (reader and not TOKEN_ID.fullmatch(reader)) or \
            not verify(keys, OPEN, ".".join(parts[1:-1]), parts[-1]):
        return None
    return TrackedLink(int(parts[1]), None, reader)


def _number(text: str) -> bool:
    return text.isascii() and text.isdigit() and len(text) <= 18


@dataclass(frozen=True)
class Request:
    """What a click request says about who made it."""

    method: str
    user_agent: str
    accept_language: str
    seconds_since_delivery: float | None  # None: not known


def is_automated(request: Request, *, knows_reader: bool) -> bool:
    """Whether a request comes from a scanner, a previewer or a program, not a person:
    HEAD requests, known agents, and a prefetch within seconds of delivery. Without the
    reader, the delivery is only the digest's latest, so a prefetch must also lack the
    Accept-Language every browser sends (a person reading during a long send counts)."""
    if request.method == "HEAD" or not request.user_agent.strip():
        return True
    if AUTOMATED_AGENTS.search(request.user_agent):
        return True
    since = request.seconds_since_delivery
    if since is None or not 0 <= since <= PREFETCH_SECONDS:
        return False
    return knows_reader or not request.accept_language.strip()


def client_key(address: str, user_agent: str) -> bytes:
    """A short, keyless digest of who made a request, for the in-memory repeat window:
    neither the address nor a 256 KB agent header is kept."""
    return hashlib.blake2b(f"{address}\0{user_agent[:512]}".encode("utf-8", "replace"),
                           digest_size=16).digest()


class RepeatFilter:
    """Remembers, in memory only, what was counted in the last REPEAT_WINDOW_SECONDS, so
    a double click, a reload or a back-and-forth counts once. Nothing of it is stored, and
    keys are short digests (client_key), so memory stays bounded by MAX_REMEMBERED."""

    def __init__(self, window: float = REPEAT_WINDOW_SECONDS,
                 limit: int = MAX_REMEMBERED, budget: int = CLIENT_BUDGET) -> None:
        self.window, self.limit, self.budget = window, limit, budget
        self._seen: OrderedDict[Hashable, float] = OrderedDict()
        self._spent: OrderedDict[bytes, tuple[float, int]] = OrderedDict()
        self._lock = threading.Lock()

    def within_budget(self, client: bytes, now: float | None = None) -> bool:
        """Whether one more count from this client (a client_key of its address alone) is
        within CLIENT_BUDGET for the window; spends one when it is."""
        moment = time.monotonic() if now is None else now
        with self._lock:
            while self._spent:
                oldest, (since, _) = next(iter(self._spent.items()))
                if moment - since <= self.window and len(self._spent) < self.limit:
                    break
                del self._spent[oldest]
            since, used = self._spent.get(client, (moment, 0))
            if used >= self.budget:
                return False
            self._spent[client] = (since, used + 1)
            return True

    def first(self, key: Hashable, now: float | None = None) -> bool:
        """True the first time `key` is seen within the window (and remembers it)."""
        moment = time.monotonic() if now is None else now
        with self._lock:
            while self._seen:
                oldest, at = next(iter(self._seen.items()))
                if moment - at <= self.window and len(self._seen) < self.limit:
                    break
                del self._seen[oldest]
            seen = self._seen.get(key)
            if seen is not None and moment - seen <= self.window:
                return False
            self._seen[key] = moment
            self._seen.move_to_end(key)
            return True


def first_name(name: str) -> str:
    """The name a greeting uses: 'Ada' of 'Ada Lovelace', of 'Dr. Ada Lovelace' and of
    'Lovelace, Ada'; '' when there is no name (or it is an address)."""
    name = " ".join(name.split())
    if not name or "@" in name:
        return ""
    if "," in name:
        family, _, given = name.partition(",")
        name = given.strip() or family.strip()
    words = [w for w in name.split(" ") if w.rstrip(".").casefold() not in HONORIFICS]
    return words[0] if words else ""


HONORIFICS = frozenset({"mr", "mrs", "ms", "mx", "miss", "dr", "prof", "sir", "dame",
                        "herr", "frau", "mme", "mlle", "sr", "sra", "srta"})


def greeting(name: str) -> str:
    """'Hello Ada,' for a reader named Ada Lovelace; 'Hello,' for one without a name."""
    first = first_name(name)
    return f"Hello {first}," if first else "Hello,"


def click_url(base_url: str, token: str) -> str:
    """Where a tracked link points: the web app, which redirects to the article."""
    return f"{base_url.rstrip('/')}/c/{token}"


def open_url(base_url: str, token: str) -> str:
    """The open image's URL."""
    return f"{base_url.rstrip('/')}/o/{token}.gif"


def longest_click_url(base_url: str, mode: TrackingMode) -> str:
    """A tracked link as long as any this install makes (a million digests on, a reader's
    token id in it when the mode counts per reader), for the size guard."""
    reader = "x" * 16 if mode.per_reader else ""
    return click_url(base_url, click_token(b"size", 999_999, 99, reader))


@dataclass(frozen=True)
class ReaderLinks:
    """The tracked links and open image of one sent digest, for one reader or for all."""

    base_url: str
    key: bytes
    digest_id: int
    per_reader: bool

    def click(self, position: int, reader: str = "") -> str:
        """The tracked link to the article at `position`."""
        return click_url(self.base_url, click_token(self.key, self.digest_id, position,
                                                    reader if self.per_reader else ""))

    def clicks_of(self, reader: str) -> Callable[[int], str]:
        """One reader's tracked links, position by position, signed once for them all."""
        if not (self.per_reader and reader):
            return self.click
        signed = reader_signature(self.key, self.digest_id, reader)
        base = click_url(self.base_url, "")
        return lambda position: base + reader_click_token(self.digest_id, position, reader,
                                                          signed)

    def open(self, reader: str = "") -> str:
        """The open image's URL."""
        return open_url(self.base_url, open_token(self.key, self.digest_id,
                                                  reader if self.per_reader else ""))
