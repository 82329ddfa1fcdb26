"""The report as a list of blocks, rendered once to Markdown and once to self-contained HTML.

A block is plain data (a heading, a paragraph, a bullet list, a table, a figure); the two
renderers below are the only places that know Markdown or HTML syntax, so both documents
always hold the same content.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Block", "Bullets", "Figure", "Heading", "Paragraph", "Table", "to_html",
           "to_markdown"]

#: The report files a search, demo or bench folder holds.
REPORT_MD = "report.md"
REPORT_HTML = "report.html"


@dataclass(frozen=True)
class Heading:
    """A section title; ``level`` 1 is the document title."""

    text: str
    level: int = 2


@dataclass(frozen=True)
class Paragraph:
    """Plain text (no markup)."""

    text: str


@dataclass(frozen=True)
class Bullets:
    """A bullet list of plain-text items."""

    items: tuple[str, ...]


@dataclass(frozen=True)
class Table:
    """A table of preformatted cells.

    Attributes:
        header: Column titles.
        rows: One tuple of cell strings per row, as long as ``header``.
        bold: ``(row, column)`` of the cells to emphasise (the best per budget).
        caption: Shown under the table.
    """

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    bold: frozenset[tuple[int, int]] = field(default_factory=frozenset)
    caption: str = ""


@dataclass(frozen=True)
class Figure:
    """A PNG written next to the report; ``path`` is relative to the report's folder."""

    path: str
    caption: str


Block = Heading | Paragraph | Bullets | Table | Figure


_NUMERIC = re.compile(r"^[-+–±()%.,0-9 /]*$")


def _numeric_columns(table: Table) -> list[bool]:
    """Right-align a column (after the first) when every cell is a number, dash or ratio."""
    return [j > 0 and all(_NUMERIC.match(row[j]) for row in table.rows)
            for j in range(len(table.header))]


def _alt(caption: str) -> str:
    """The short alt text of a figure: its caption up to the first colon."""
    return caption.split(":", 1)[0]


def _md_cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def to_markdown(blocks: Sequence[Block]) -> str:
    """Render the blocks as GitHub-flavoured Markdown (figures as relative image links)."""
    parts: list[str] = []
    for b in blocks:
        if isinstance(b, Heading):
            parts.append(f"{'#' * b.level} {b.text}")
        elif isinstance(b, Paragraph):
            parts.append(b.text)
        elif isinstance(b, Bullets):
            parts.append("\n".join(f"- {item}" for item in b.items))
        elif isinstance(b, Table):
            rule = [" ---: " if num else " --- " for num in _numeric_columns(b)]
            lines = ["| " + " | ".join(_md_cell(h) for h in b.header) + " |",
                     "|" + "|".join(rule) + "|"]
            for i, row in enumerate(b.rows):
                cells = [f"**{_md_cell(c)}**" if (i, j) in b.bold and c else _md_cell(c)
                         for j, c in enumerate(row)]
                lines.append("| " + " | ".join(cells) + " |")
            if b.caption:
                lines.append("")
                lines.append(f"*{b.caption}*")
            parts.append("\n".join(lines))
        elif isinstance(b, Figure):
            parts.append(f"![{_alt(b.caption)}]({b.path})\n\n*{b.caption}*")
        else:  # pragma: no cover - the Block union is closed
            raise TypeError(f"unknown report block {b!r}")
    return "\n\n".join(parts) + "\n"


_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif;
       max-width: 1200px; margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { border-bottom: 2px solid #444; padding-bottom: .2em; }
h2 { border-bottom: 1px solid #bbb; padding-bottom: .15em; margin-top: 2em; }
table { border-collapse: collapse; margin: .8em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: right; }
th.l, td.l { text-align: left; }
th { background: #f0f0f0; }
tr:nth-child(even) td { background: #fafafa; }
td strong { color: #000; }
.caption { color: #555; font-size: 0.88em; margin-top: -.3em; }
figure { margin: 1em 0; }
figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { color: #555; font-size: 0.88em; }
.scroll { overflow-x: auto; }
""".strip()


def to_html(blocks: Sequence[Block], title: str, base_dir: str | Path) -> str:
    """Render the blocks as one HTML page; figures are embedded as base64 ``data:`` URIs.

    Args:
        blocks: The report.
        title: The page title.
        base_dir: The folder that figure paths are relative to.
    """
    esc = html.escape
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
           f"<title>{esc(title)}</title>", f"<style>\n{_CSS}\n</style>", "</head>", "<body>"]
    for b in blocks:
        if isinstance(b, Heading):
            out.append(f"<h{b.level}>{esc(b.text)}</h{b.level}>")
        elif isinstance(b, Paragraph):
            out.append(f"<p>{esc(b.text)}</p>")
        elif isinstance(b, Bullets):
            out.append("<ul>" + "".join(f"<li>{esc(i)}</li>" for i in b.items) + "</ul>")
        elif isinstance(b, Table):
            left = ['' if num else ' class="l"' for num in _numeric_columns(b)]
            rows = ["<tr>" + "".join(f"<th{a}>{esc(h)}</th>" for h, a in zip(b.header, left,
                                                                            strict=True))
                    + "</tr>"]
            for i, row in enumerate(b.rows):
                cells = [f"<td{left[j]}><strong>{esc(c)}</strong></td>"
                         if (i, j) in b.bold and c else f"<td{left[j]}>{esc(c)}</td>"
                         for j, c in enumerate(row)]
                rows.append("<tr>" + "".join(cells) + "</tr>")
            out.append('<div class="scroll"><table>' + "\n".join(rows) + "</table></div>")
            if b.caption:
                out.append(f'<p class="caption">{esc(b.caption)}</p>')
        elif isinstance(b, Figure):
            data = base64.b64encode((Path(base_dir) / b.path).read_bytes()).decode("ascii")
            out.append(f'<figure><img alt="{esc(_alt(b.caption))}" '
                       f'src="data:image/png;base64,{data}">'
                       f"<figcaption>{esc(b.caption)}</figcaption></figure>")
        else:  # pragma: no cover - the Block union is closed
            raise TypeError(f"unknown report block {b!r}")
    out += ["</body>", "</html>"]
    return "\n".join(out) + "\n"
