"""The report's two renderers: Markdown (figures linked) and one self-contained HTML page (figures
embedded as base64 PNG)."""

from __future__ import annotations

import base64
import html
from pathlib import Path

from surge.analysis import SweepAnalysis
from surge.report.document import Bullets, Figure, Heading, Paragraph, Table, report_blocks


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_markdown(
    analysis: SweepAnalysis, figures: dict[str, list[Path]] | None = None, *, base: Path | None = None
) -> str:
    """The report as Markdown; figures are linked by path (relative to ``base`` when given).

    Args:
        analysis: the analysis to render.
        figures: figure key -> [png, pdf] paths (as :func:`surge.plots.sweep_figures.save_sweep_figures`
            returns); a figure without files is left out. None (default): no figures.
        base: the folder the Markdown file lives in: PNG paths below it are linked relative to it; None
            (default): paths as given.

    Returns:
        str: the Markdown text, ending in one newline.
    """
    lines: list[str] = []
    for block in report_blocks(analysis):
        if isinstance(block, Heading):
            lines += ["#" * block.level + " " + block.text, ""]
        elif isinstance(block, Paragraph):
            lines += [block.text, ""]
        elif isinstance(block, Bullets):
            lines += [f"- {item}" for item in block.items] + [""]
        elif isinstance(block, Table):
            header, rows = block.header, block.rows
            lines.append("| " + " | ".join(_md_cell(h) for h in header) + " |")
            lines.append("|" + "|".join("---" for _ in header) + "|")
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
            lines.append("")
        elif isinstance(block, Figure):
            paths = (figures or {}).get(block.key)
            if paths:
                png = Path(paths[0])
                link = png.relative_to(base) if base is not None and png.is_relative_to(base) else png
                pdf = Path(paths[1]).name if len(paths) > 1 else None
                lines += [f"![{block.caption}]({link.as_posix()})", ""]
                lines += [f"*{block.caption}*" + (f" (PDF: `{pdf}`)" if pdf else ""), ""]
    return "\n".join(lines).rstrip() + "\n"


def _md_inline_to_html(text: str) -> str:
    """Escape, then turn **bold** into <strong>."""
    parts = html.escape(str(text)).split("**")
    return "".join(f"<strong>{p}</strong>" if i % 2 else p for i, p in enumerate(parts))


_CSS = """
body{font-family:-apple-system,BlinkMacSystemFont,"Segoe UI",Helvetica,Arial,sans-serif;max-width:1200px;
margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em;border-bottom:2px solid #ddd;padding-bottom:.3em}h2{font-size:1.3em;margin-top:2em;
border-bottom:1px solid #eee;padding-bottom:.2em}
table{border-collapse:collapse;margin:.8em 0;font-size:.88em}th,td{border:1px solid #ccc;padding:.25em .55em;
text-align:right;vertical-align:top}th{background:#f3f3f3}td:last-child{text-align:left}
figure{margin:1em 0}figure img{max-width:100%;border:1px solid #eee}figcaption{font-size:.85em;color:#555}
"""


def render_html(analysis: SweepAnalysis, figures: dict[str, list[Path]] | None = None) -> str:
    """The report as one self-contained HTML page: the PNG figures are embedded as base64 data URIs.

    Args:
        analysis: the analysis to render.
        figures: figure key -> [png, pdf] paths; each PNG is read and embedded, a figure without files is
            left out. None (default): no figures.

    Returns:
        str: the HTML page (UTF-8 text, with its CSS inline).

    Raises:
        OSError: a figure's PNG cannot be read.
    """
    body: list[str] = []
    for block in report_blocks(analysis):
        if isinstance(block, Heading):
            body.append(f"<h{block.level}>{html.escape(block.text)}</h{block.level}>")
        elif isinstance(block, Paragraph):
            body.append(f"<p>{_md_inline_to_html(block.text)}</p>")
        elif isinstance(block, Bullets):
            body.append("<ul>" + "".join(f"<li>{_md_inline_to_html(i)}</li>" for i in block.items) + "</ul>")
        elif isinstance(block, Table):
            head = "".join(f"<th>{html.escape(h)}</th>" for h in block.header)
            rows = "".join(
                "<tr>" + "".join(f"<td>{_md_inline_to_html(c)}</td>" for c in row) + "</tr>" for row in block.rows
            )
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif isinstance(block, Figure):
            paths = (figures or {}).get(block.key)
            if paths:
                data = base64.b64encode(Path(paths[0]).read_bytes()).decode("ascii")
                body.append(
                    f'<figure><img alt="{html.escape(block.caption)}" src="data:image/png;base64,{data}">'
                    f"<figcaption>{html.escape(block.caption)}</figcaption></figure>"
                )
    title = html.escape(f"surge analysis: {analysis.config}")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{title}</title><style>{_CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )
