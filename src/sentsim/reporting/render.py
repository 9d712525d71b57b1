"""The report as a list of blocks (headings, paragraphs, tables, images, code), rendered as Markdown and HTML.

The page is built once and rendered twice, so report.md and report.html always say the same thing.
report.html embeds its images and style, so it can be mailed or archived alone and opens offline.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field

from sentsim.reporting.model_card import code_block, escape_markdown

__all__ = ["Block", "Code", "Heading", "Image", "Table", "render_html", "render_markdown"]


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]
    numeric: set[int] = field(default_factory=set)  # column indexes to right-align
    wide: set[int] = field(default_factory=set)  # column indexes holding long text


@dataclass(frozen=True)
class Image:
    relative_path: str
    alt: str
    png: bytes


@dataclass(frozen=True)
class Code:
    text: str


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


Block = Heading | str | Table | Image | Code


def render_markdown(blocks: list[Block]) -> str:
    parts: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            parts.append(f"{'#' * block.level} {escape_markdown(block.text)}")
        elif isinstance(block, str):
            parts.append(escape_markdown(block))
        elif isinstance(block, Image):
            parts.append(f"![{escape_markdown(block.alt)}]({block.relative_path})")
        elif isinstance(block, Code):
            parts.append(code_block(block.text, "bash"))
        else:
            align = ["---:" if index in block.numeric else "---" for index in range(len(block.header))]
            lines = [
                "| " + " | ".join(escape_markdown(cell) for cell in block.header) + " |",
                "| " + " | ".join(align) + " |",
            ]
            lines += ["| " + " | ".join(escape_markdown(cell) for cell in row) + " |" for row in block.rows]
            parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


_CSS = """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1b1b1b;
       max-width: 1100px; margin: 2em auto; padding: 0 1em; }
h1 { font-size: 1.6em; border-bottom: 2px solid #ddd; padding-bottom: .3em; }
h2 { font-size: 1.25em; margin-top: 1.8em; }
h3 { font-size: 1.05em; margin-top: 1.2em; }
table { border-collapse: collapse; margin: .6em 0; }
th, td { border: 1px solid #d8d8d8; padding: .3em .6em; vertical-align: top; text-align: left; }
th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.text { min-width: 14em; overflow-wrap: anywhere; }
img { max-width: 100%; height: auto; border: 1px solid #eee; }
pre { background: #f6f6f6; padding: .8em; overflow-x: auto; white-space: pre-wrap; overflow-wrap: anywhere; }
""".strip()


def render_html(title: str, blocks: list[Block]) -> str:
    escape = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title>",
        f"<style>\n{_CSS}\n</style>",
        "</head>",
        "<body>",
    ]
    for block in blocks:
        if isinstance(block, Heading):
            parts.append(f"<h{block.level}>{escape(block.text)}</h{block.level}>")
        elif isinstance(block, str):
            parts.append(f"<p>{escape(block)}</p>")
        elif isinstance(block, Image):
            data = base64.b64encode(block.png).decode("ascii")
            parts.append(f'<p><img src="data:image/png;base64,{data}" alt="{escape(block.alt)}"></p>')
        elif isinstance(block, Code):
            parts.append(f"<pre><code>{escape(block.text)}</code></pre>")
        else:
            parts.append("<table>")
            if any(block.header):
                parts.append("<thead><tr>" + "".join(f"<th>{escape(c)}</th>" for c in block.header) + "</tr></thead>")
            parts.append("<tbody>")
            for row in block.rows:
                cells = []
                for index, cell in enumerate(row):
                    css = "num" if index in block.numeric else "text" if index in block.wide else ""
                    attribute = f' class="{css}"' if css else ""
                    cells.append(f"<td{attribute}>{escape(cell)}</td>")
                parts.append("<tr>" + "".join(cells) + "</tr>")
            parts.append("</tbody></table>")
    parts += ["</body>", "</html>", ""]
    return "\n".join(parts)
