"""Golden files: a saved digest rendered through the bundled templates must give the saved
HTML, text and message, byte for byte (volatile headers normalised). After a deliberate
change to the templates or the renderer, regenerate them with
`DIGEST_REGENERATE_GOLDEN=1 .venv/bin/pytest tests/test_golden.py` and review the diff."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from digest.message import Envelope
from digest.models import Recipient
from digest.render import RenderOptions, personalise, render_digest
from digest.splice import MessageTemplate
from tests.conftest import REPO
from tests.test_email import big_digest

GOLDEN = Path(__file__).parent / "golden"
REGENERATE = os.environ.get("DIGEST_REGENERATE_GOLDEN") == "1"
OPTIONS = RenderOptions(templates=REPO / "templates", subject_template="{{ title }}: {{ count }}",
                        base_url="https://digest.example", postal_address="1 Launch Lane")
ENVELOPE = Envelope(from_address="Spacecraft Digest <digest@news.example>", reply_to="",
                    list_id="Spacecraft Digest <spacecraft-digest.news.example>",
                    base_url="https://digest.example",
                    unsubscribe_mailto="unsubscribe@news.example", archive_key=b"golden-key")
VOLATILE = re.compile(rb"^(Date|Message-ID): .*$", re.M)


def _matches(name: str, produced: bytes) -> None:
    path = GOLDEN / name
    if REGENERATE:
        GOLDEN.mkdir(exist_ok=True)
        path.write_bytes(produced)
    assert path.exists(), f"{path} is missing: run with DIGEST_REGENERATE_GOLDEN=1"
    expected = path.read_bytes()
    assert produced == expected, f"{name} differs from the golden file (see the module docstring)"


@pytest.fixture(scope="module")
def rendered():  # type: ignore[no-untyped-def]
    return render_digest(big_digest(4), OPTIONS)


def test_the_html_part_is_the_golden_one(rendered) -> None:  # type: ignore[no-untyped-def]
    html, _ = personalise(rendered, name="Ada", email="ada@example.org",
                          unsubscribe_url="https://digest.example/unsubscribe/s.T.S",
                          web_url="https://digest.example/archive/1/?k=K")
    _matches("digest.html", html.encode())


def test_the_text_part_is_the_golden_one(rendered) -> None:  # type: ignore[no-untyped-def]
    _, text = personalise(rendered, name="Ada", email="ada@example.org",
                          unsubscribe_url="https://digest.example/unsubscribe/s.T.S",
                          web_url="https://digest.example/archive/1/?k=K")
    _matches("digest.txt", text.encode())


def test_the_message_is_the_golden_one(rendered) -> None:  # type: ignore[no-untyped-def]
    template = MessageTemplate(rendered, envelope=ENVELOPE, digest_id=1,
                               created_at=datetime(2026, 11, 26, 7, tzinfo=UTC),
                               unsubscribe_base="https://digest.example/unsubscribe/")
    data = template.message_bytes(Recipient(1, "ada@example.org", "Ada Lovelace"), "s.T.S",
                                  "<digest-1.0123456789abcdef@news.example>")
    _matches("message.eml", VOLATILE.sub(rb"\1: (normalised)", data))
