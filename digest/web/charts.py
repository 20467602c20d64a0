"""Small charts for the desk, drawn on the server as inline SVG: no script, no stylesheet
from elsewhere, readable with images off (each has a title and its figures in text)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

PEOPLE, AUTOMATED, AXIS, INK = "#1d5fbf", "#b9c6dd", "#8a96a8", "#1f2933"


@dataclass(frozen=True)
class Bar:
    """One row of a bar chart: a label, people's count, and automated requests."""

    label: str
    value: int
    automated: int = 0


def bar_chart(title: str, bars: Sequence[Bar], width: int = 640) -> Markup:
    """Horizontal bars, one per row, the automated share drawn lighter after it."""
    row, label_width, gap = 26, 290, 8
    height = max(1, len(bars)) * row + 8
    most = max((b.value + b.automated for b in bars), default=0) or 1
    room = width - label_width - 70
    parts = [_open(title, width, height)]
    for i, b in enumerate(bars):
        y = 4 + i * row
        people = round(room * b.value / most)
        machines = round(room * b.automated / most)
        parts.append(f'<text x="{label_width - gap}" y="{y + 16}" text-anchor="end" '
                     f'font-size="12" fill="{INK}">{escape(_short(b.label, 38))}</text>')
        parts.append(f'<rect class="bar" x="{label_width}" y="{y + 3}" width="{people}" '
                     f'height="16" fill="{PEOPLE}"><title>{escape(b.label)}: {b.value} clicks'
                     f'</title></rect>')
        if machines:
            parts.append(f'<rect class="bar automated" x="{label_width + people}" y="{y + 3}" '
                         f'width="{machines}" height="16" fill="{AUTOMATED}">'
                         f'<title>{b.automated} automated</title></rect>')
        parts.append(f'<text x="{label_width + people + machines + gap}" y="{y + 16}" '
                     f'font-size="12" fill="{INK}">{b.value}</text>')
    return Markup("".join(parts) + "</svg>")


def column_chart(title: str, columns: Sequence[Bar], width: int = 640,
                 height: int = 180) -> Markup:
    """Vertical columns left to right (the audience over time), the last value labelled."""
    top, bottom = 20, 24
    plot = height - top - bottom
    most = max((c.value for c in columns), default=0) or 1
    step = width / max(1, len(columns))
    bar = max(2.0, min(40.0, step * 0.7))
    parts = [_open(title, width, height),
             f'<line x1="0" y1="{top + plot}" x2="{width}" y2="{top + plot}" '
             f'stroke="{AXIS}" stroke-width="1"/>']
    for i, c in enumerate(columns):
        tall = round(plot * c.value / most)
        x = round(i * step + (step - bar) / 2, 1)
        parts.append(f'<rect class="column" x="{x}" y="{top + plot - tall}" width="{bar:.1f}" '
                     f'height="{tall}" fill="{PEOPLE}"><title>{escape(c.label)}: {c.value}'
                     f'</title></rect>')
    if columns:
        first, last = columns[0], columns[-1]
        parts.append(f'<text x="0" y="{height - 6}" font-size="11" fill="{INK}">'
                     f'{escape(first.label)}</text>')
        parts.append(f'<text x="{width}" y="{height - 6}" text-anchor="end" font-size="11" '
                     f'fill="{INK}">{escape(last.label)}</text>')
        parts.append(f'<text x="{width}" y="12" text-anchor="end" font-size="12" '
                     f'fill="{INK}">{last.value} now</text>')
    return Markup("".join(parts) + "</svg>")


def _open(title: str, width: int, height: int) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" role="img" class="chart" '
            f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
            f'aria-label="{escape(title)}"><title>{escape(title)}</title>')


def _short(text: str, most: int) -> str:
    return text if len(text) <= most else text[:most - 1].rstrip() + "…"
