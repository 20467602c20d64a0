"""A page's bytes → text, with the encoding chosen as browsers choose it (the WHATWG HTML
"encoding sniffing algorithm"): a byte-order mark, then the HTTP charset, then a <meta>
declaration in the head, then detection from the bytes themselves.

A BOM is read before the HTTP charset because that is what the WHATWG "decode" step and
every browser do: a page that starts with a UTF-8 BOM is UTF-8 whatever the server says."""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

from charset_normalizer import from_bytes

BOMS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_BE, "utf-16-be"),
        (codecs.BOM_UTF16_LE, "utf-16-le"))
HTTP_CHARSET = re.compile(r"""charset\s*=\s*["']?\s*([^\s;"',]+)""", re.IGNORECASE)
META_TAG = re.compile(rb"<meta\b([^>]*)>", re.IGNORECASE)
META_CHARSET = re.compile(rb"""\bcharset\s*=\s*["']?\s*([^\s;"'/>]+)""", re.IGNORECASE)
ATTRIBUTE = re.compile(rb"""([^\s=/>]+)\s*=\s*("[^"]*"|'[^']*'|[^\s>]*)""")
NOT_MARKUP = re.compile(rb"<!--.*?-->|<script\b.*?</script\s*>", re.IGNORECASE | re.DOTALL)
HEAD_END = re.compile(rb"<body\b|</head\s*>", re.IGNORECASE)
HEAD_SCAN = 64 * 1024  # browsers re-decode when a late <meta> in the head names another
DETECT_SAMPLE = 256 * 1024
UTF8_EVIDENCE = 10  # valid multi-byte characters a UTF-8 page shows per stray broken byte

# WHATWG Encoding Standard labels that Python names differently or maps elsewhere: a page
# labelled ISO-8859-1 or ASCII is decoded as windows-1252, as in every browser.
WHATWG_LABELS = {
    **dict.fromkeys(("ascii", "us-ascii", "iso-8859-1", "iso8859-1", "iso88591", "latin1",
                     "l1", "iso_8859-1", "iso_8859-1:1987", "iso-ir-100", "csisolatin1",
                     "ibm819", "cp819", "ansi_x3.4-1968", "windows-1252", "cp1252",
                     "x-cp1252"), "cp1252"),
    **dict.fromkeys(("iso-8859-9", "iso8859-9", "iso88599", "latin5", "l5", "windows-1254",
                     "cp1254", "x-cp1254"), "cp1254"),
    **dict.fromkeys(("tis-620", "iso-8859-11", "iso8859-11", "windows-874", "dos-874"),
                    "cp874"),
    **dict.fromkeys(("gb2312", "gbk", "x-gbk", "chinese", "csgb2312", "gb_2312",
                     "gb_2312-80", "iso-ir-58"), "gbk"),
    **dict.fromkeys(("big5", "big5-hkscs", "cn-big5", "csbig5", "x-x-big5"), "big5hkscs"),
    **dict.fromkeys(("euc-kr", "ks_c_5601-1987", "ks_c_5601-1989", "ksc5601", "ksc_5601",
                     "korean", "csksc56011987", "iso-ir-149", "windows-949"), "cp949"),
    **dict.fromkeys(("shift_jis", "shift-jis", "sjis", "ms_kanji", "windows-31j", "x-sjis",
                     "csshiftjis", "ms932"), "cp932"),
    **dict.fromkeys(("utf-16", "utf-16le", "unicode", "ucs-2", "csunicode",
                     "iso-10646-ucs-2", "unicodefeff"), "utf-16-le"),
    **dict.fromkeys(("utf-16be", "unicodefffe"), "utf-16-be"),
    **dict.fromkeys(("utf8", "unicode-1-1-utf-8", "unicode11utf8", "unicode20utf8",
                     "x-unicode20utf8"), "utf-8"),
    **dict.fromkeys(("x-mac-cyrillic", "x-mac-ukrainian"), "mac-cyrillic"),
    **dict.fromkeys(("macintosh", "mac", "x-mac-roman", "csmacintosh"), "mac-roman"),
    **dict.fromkeys(("koi8-ru", "koi8-u"), "koi8-u"),
    **dict.fromkeys(("iso-8859-8-i", "csiso88598i", "logical"), "iso8859-8"),
}


@dataclass(frozen=True)
class Decoded:
    """A page's text and how its encoding was chosen (http, bom, meta, detected, default)."""

    text: str
    encoding: str
    found_by: str


def decode_page(body: bytes, content_type: str = "") -> Decoded:
    """The page's text, its encoding chosen BOM → HTTP charset → <meta> → detection."""
    for bom, name in BOMS:
        if body.startswith(bom):
            return Decoded(body[len(bom):].decode(name, "replace"), name, "bom")
    http = _whatwg_codec(_http_charset(content_type))
    if http:
        return Decoded(body.decode(http, "replace"), http, "http")
    meta = _meta_charset(body)
    if meta:
        return Decoded(body.decode(meta, "replace"), meta, "meta")
    name, found_by = _detect(body)
    return Decoded(body.decode(name, "replace"), name, found_by)


def _http_charset(content_type: str) -> str:
    match = HTTP_CHARSET.search(content_type or "")
    return match.group(1) if match else ""


def _meta_charset(body: bytes) -> str:
    head = body[:HEAD_SCAN]
    end = HEAD_END.search(head)
    head = NOT_MARKUP.sub(b"", head[:end.start()] if end else head)
    for tag in META_TAG.finditer(head):
        attributes = {name.lower(): value.strip(b"\"'") for name, value in
                      ATTRIBUTE.findall(tag.group(1))}
        label = attributes.get(b"charset", b"")
        if not label and attributes.get(b"http-equiv", b"").lower() == b"content-type":
            found = META_CHARSET.search(attributes.get(b"content", b""))
            label = found.group(1) if found else b""
        codec = _whatwg_codec(label.decode("ascii", "ignore"))
        if codec:
            # A <meta> can't be read in UTF-16, so a page that says so in one isn't (WHATWG).
            return "utf-8" if codec.startswith("utf-16") else codec
    return ""


def _whatwg_codec(label: str) -> str:
    label = label.strip().strip("\"'").lower()
    if not label or label == "x-user-defined":
        return ""
    name = WHATWG_LABELS.get(label, label)
    try:
        return codecs.lookup(name).name
    except LookupError:
        return ""


def _detect(body: bytes) -> tuple[str, str]:
    if _mostly_utf8(body):
        return "utf-8", "detected"
    guess = from_bytes(body[:DETECT_SAMPLE]).best()
    if guess is not None and guess.encoding:
        return _whatwg_codec(guess.encoding) or guess.encoding, "detected"
    return "cp1252", "default"


def _mostly_utf8(body: bytes) -> bool:
    """Valid UTF-8, or UTF-8 with a few stray bytes (an ad or a comment pasted in Latin-1)."""
    try:
        body.decode("utf-8")
        return True
    except UnicodeDecodeError:
        pass
    text = body.decode("utf-8", "replace")
    broken = text.count("\ufffd")
    wide = sum(1 for c in text if c > "\x7f") - broken
    return wide >= UTF8_EVIDENCE * broken
