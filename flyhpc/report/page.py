"""The report page as one self-contained HTML5 document: inline CSS, inline SVG figures, no script, no URL.

Knows HTML only: `build` hands it a `Page` of sections, each a list of paragraphs, figures (SVG
text) and tables (rows of values, shown through `tables.fmt`). Every text is escaped; every id
inside an inline SVG gets its figure's prefix, so ids stay unique across the page. Entry points:
`Page`, `Section`, `FigureBlock`, `TableBlock`, `render_page`.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from flyhpc.report.figures import colour
from flyhpc.report.tables import fmt

ID_KEYS = ("flywire_id", "job_id")  # numbers shown as they are, never with separators
CSS = """
:root { color-scheme: light; }
body { font-family: "DejaVu Sans", "Liberation Sans", Arial, sans-serif; margin: 0; color: #1b1b1b;
       background: #ffffff; line-height: 1.45; }
header, main, footer { max-width: 1280px; margin: 0 auto; padding: 0 24px; }
header { padding-top: 20px; }
h1 { font-size: 28px; margin: 0 0 4px 0; }
h2 { font-size: 20px; border-bottom: 2px solid #0072B2; padding-bottom: 3px; margin-top: 34px; }
.sub { color: #4a4a4a; margin: 0 0 12px 0; }
.banner { padding: 10px 14px; margin: 8px 0; border-left: 6px solid; font-weight: bold; }
.banner.warn { background: #fff4d6; border-color: #E69F00; }
.banner.bad { background: #fde7df; border-color: #D55E00; }
.banner.ok { background: #e3f3ec; border-color: #009E73; }
nav ol { display: flex; flex-wrap: wrap; gap: 4px 22px; list-style: none; padding: 0; margin: 8px 0 0 0; }
figure { margin: 14px 0; overflow-x: auto; }
figure svg { max-width: 100%; height: auto; }
figcaption { color: #4a4a4a; font-size: 13px; }
table { border-collapse: collapse; margin: 10px 0 18px 0; font-size: 13px; }
caption { text-align: left; font-weight: bold; padding: 4px 0; }
th, td { border-bottom: 1px solid #d8d8d8; padding: 3px 9px; text-align: left; vertical-align: top; }
th { background: #f1f3f5; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.key { white-space: nowrap; }
.sw { display: inline-block; width: 10px; height: 10px; margin-right: 6px; border-radius: 2px; }
.state-done { color: #006b4f; }
.state-bad { color: #b03a00; font-weight: bold; }
.scroll { max-height: 520px; overflow-y: auto; display: inline-block; }
footer { color: #4a4a4a; font-size: 12px; padding: 24px; }
"""


@dataclass(frozen=True)
class FigureBlock:
    """An inline SVG figure (`name` is its file stem beside the page) with a caption."""

    name: str
    svg: str
    caption: str


@dataclass(frozen=True)
class TableBlock:
    """A table: `columns` are (key, heading) pairs; a `backend` column gets its colour swatch;
    `state_key` names a column whose non-"done" values are shown as failures; `scroll` caps its height."""

    caption: str
    columns: Sequence[tuple[str, str]]
    rows: Sequence[dict[str, Any]]
    state_key: str | None = None
    scroll: bool = False


@dataclass(frozen=True)
class Section:
    id: str
    title: str
    paragraphs: Sequence[str] = ()
    blocks: Sequence[FigureBlock | TableBlock] = ()


@dataclass(frozen=True)
class Page:
    title: str
    subtitle: str
    banners: Sequence[tuple[str, str]] = ()  # (kind: warn | bad | ok, text)
    sections: Sequence[Section] = field(default_factory=list)
    footer: str = ""


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _prefix_ids(svg: str, prefix: str) -> str:
    """Give every id of an inline SVG (and every reference to one) a prefix unique on the page."""
    svg = re.sub(r'\bid="([^"]+)"', lambda m: f'id="{prefix}-{m.group(1)}"', svg)
    svg = re.sub(r'(xlink:href|href)="#([^"]+)"', lambda m: f'{m.group(1)}="#{prefix}-{m.group(2)}"', svg)
    return re.sub(r"url\(#([^)]+)\)", lambda m: f"url(#{prefix}-{m.group(1)})", svg)


def _svg(block: FigureBlock) -> str:
    svg = _prefix_ids(block.svg.strip(), f"fig-{block.name}")
    svg = svg.replace("<svg ", f'<svg role="img" aria-label="{_e(block.caption)}" ', 1)
    return f'<figure id="figure-{_e(block.name)}">\n{svg}\n<figcaption>{_e(block.caption)}</figcaption>\n</figure>'


def _cell(key: str, value: Any, state_key: str | None) -> str:
    if key == "backend" and value:
        return f'<td class="key"><span class="sw" style="background:{colour(str(value))}"></span>{_e(value)}</td>'
    if key in ID_KEYS:
        return f'<td class="num">{_e(value)}</td>'
    if key == state_key:
        cls = "state-done" if value == "done" else "state-bad"
        return f'<td class="{cls}">{_e(value)}</td>'
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_)):
        return f'<td class="num">{_e(fmt(value))}</td>'
    return f"<td>{_e(fmt(value))}</td>"


def _table(block: TableBlock) -> str:
    head = "".join(f'<th scope="col">{_e(h)}</th>' for _, h in block.columns)
    body = "\n".join("<tr>" + "".join(_cell(k, row.get(k), block.state_key) for k, _ in block.columns) + "</tr>"
                     for row in block.rows)
    table = (f"<table>\n<caption>{_e(block.caption)}</caption>\n<thead><tr>{head}</tr></thead>\n"
             f"<tbody>\n{body}\n</tbody>\n</table>")
    return f'<div class="scroll">{table}</div>' if block.scroll else table


def _section(section: Section, number: int) -> str:
    parts = [f'<section id="{_e(section.id)}">', f"<h2>{number}. {_e(section.title)}</h2>"]
    parts += [f"<p>{_e(p)}</p>" for p in section.paragraphs]
    parts += [_svg(b) if isinstance(b, FigureBlock) else _table(b) for b in section.blocks]
    parts.append("</section>")
    return "\n".join(parts)


def render_page(page: Page) -> str:
    """The whole HTML document."""
    banners = "\n".join(f'<p class="banner {_e(kind)}">{_e(text)}</p>' for kind, text in page.banners)
    nav = "".join(f'<li><a href="#{_e(s.id)}">{i}. {_e(s.title)}</a></li>' for i, s in enumerate(page.sections, 1))
    sections = "\n".join(_section(s, i) for i, s in enumerate(page.sections, 1))
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(page.title)}</title>
<style>{CSS}</style>
</head>
<body>
<header>
<h1>{_e(page.title)}</h1>
<p class="sub">{_e(page.subtitle)}</p>
{banners}
<nav aria-label="sections"><ol>{nav}</ol></nav>
</header>
<main>
{sections}
</main>
<footer>{_e(page.footer)}</footer>
</body>
</html>
"""
