"""Self-contained HTML pages: inline CSS, pictures embedded as base64, escaped text.

A page written here opens on its own (mailed, copied, viewed offline); its only links point at
sibling files (JSON figures, other reports).
"""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable, Sequence
from pathlib import Path

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto;
       max-width: 1280px; padding: 0 1em; color: #222; line-height: 1.4; }
h1 { border-bottom: 2px solid #ddd; padding-bottom: .3em; }
h2 { margin-top: 2em; border-bottom: 1px solid #eee; }
table { border-collapse: collapse; margin: .8em 0; font-size: 14px; }
th, td { border: 1px solid #ccc; padding: 4px 10px; text-align: left; }
th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; height: auto; border: 1px solid #eee; }
.note { color: #555; font-size: 14px; }
figure { margin: 1em 0; }
figcaption { font-weight: 600; margin-bottom: .4em; }
"""


def esc(text: object) -> str:
    return html.escape(str(text))


def data_uri(png: Path) -> str:
    """The PNG's bytes as a `data:` URI."""
    return "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode("ascii")


def figure(title: str, png: Path | None) -> str:
    """A titled picture embedded in the page (or a line saying there is none)."""
    if png is None or not png.is_file():
        return f"<h3>{esc(title)}</h3><p class='note'>(not available for this run)</p>"
    return (
        f"<figure><figcaption>{esc(title)}</figcaption>"
        f"<img src='{data_uri(png)}' alt='{esc(title)}'></figure>"
    )


def _cell(value: object) -> str:
    text = esc(value)
    numeric = text.replace(".", "", 1).replace("-", "", 1).replace(",", "").isdigit()
    return f"<td class='num'>{text}</td>" if numeric else f"<td>{text}</td>"


def table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """An HTML table; no rows gives a note instead of a header-only table."""
    rows = list(rows)
    if not rows:
        return "<p class='note'>(nothing to show)</p>"
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def link(href: str, text: str) -> str:
    return f"<a href='{esc(href)}'>{esc(text)}</a>"


def page(title: str, body: Iterable[str]) -> str:
    """A whole HTML document."""
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{esc(title)}</title><style>{STYLE}</style></head><body>"
        f"<h1>{esc(title)}</h1>" + "\n".join(body) + "</body></html>\n"
    )
