"""`xlcrm report` output: a terminal summary and a standalone HTML page with charts.

The HTML page has no scripts and loads nothing: the charts are inline SVG bars drawn here
(a few lines; a charting library would add a large dependency or a network fetch to a page that
is meant to be mailed).
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Sequence
from typing import Any

import pandas as pd

from . import schema
from .analytics import Analytics
from .dashboard import COLUMN_LABELS, KPI_LABELS, LAYOUT, TITLES, shown_cell
from .schema import Lang

PALETTE = ("#4F81BD", "#C0504D", "#9BBB59", "#8064A2", "#4BACC6", "#F79646")


def fmt(value: Any, column: str = "") -> str:
    if value is None or value is pd.NaT or (isinstance(value, float) and value != value):
        return "—"
    if value is pd.NA:
        return "—"
    if column in ("win_rate", "conversion"):
        return f"{float(value):.1%}"
    if isinstance(value, pd.Timestamp | dt.datetime):
        return value.strftime("%Y-%m-%d")
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 100 or value.is_integer() else f"{value:,.1f}"
    if hasattr(value, "item"):
        return fmt(value.item(), column)
    return str(value)


def kpi_lines(a: Analytics, lang: Lang) -> list[tuple[str, str]]:
    out = []
    for key, pair in KPI_LABELS.items():
        value = a.kpis.get(key)
        text = fmt(value, "win_rate" if key == "win_rate" else "")
        if key in ("pipeline", "weighted_pipeline", "won_amount", "forecast_6m_weighted"):
            text = f"{text} {a.kpis.get('currency', '')}"
        out.append((schema.label(pair, lang), text))
    return out


def render_text(a: Analytics, lang: Lang, workbook: str) -> str:
    """A terminal summary: KPIs, pipeline, forecast, stalls, team."""
    lines = [f"{schema.label(TITLES['dashboard'], lang)} — {workbook}",
             *(f"  {note}" for note in a.note_lines(lang)), ""]
    width = max(len(label) for label, _ in kpi_lines(a, lang)) + 2
    lines += [f"  {label:<{width}}{value}" for label, value in kpi_lines(a, lang)]
    for key in ("pipeline", "forecast", "time_in_stage", "team"):
        columns = next(c for k, c, _, _ in LAYOUT if k == key)
        lines += ["", schema.label(TITLES[key], lang)]
        lines += _text_table(getattr(a, key), columns, lang)
    return "\n".join(lines)


def _text_table(table: pd.DataFrame, columns: Sequence[str], lang: Lang) -> list[str]:
    header = [schema.label(COLUMN_LABELS[c], lang) for c in columns]
    rows = [[fmt(shown_cell(c, r[c], lang), c) for c in columns]
            for r in table[list(columns)].to_dict("records")]
    widths = [max(len(str(x)) for x in [h, *(row[i] for row in rows)])
              for i, h in enumerate(header)]
    out = ["  " + "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    for row in rows:
        out.append("  " + "  ".join(v.rjust(w) if i else v.ljust(w)
                                    for i, (v, w) in enumerate(zip(row, widths, strict=True))))
    return out


def render_html(a: Analytics, lang: Lang, workbook: str, today: dt.date) -> str:
    """A standalone page: KPI tiles, charts (inline SVG) and every table."""
    esc = html.escape
    title = f"{schema.label(TITLES['dashboard'], lang)} — {workbook}"
    parts = [f"<!doctype html><html lang=\"{'zh-CN' if lang == 'zh' else 'en'}\"><head>"
             f"<meta charset=\"utf-8\"><title>{esc(title)}</title><style>{_CSS}</style></head>"
             f"<body><h1>{esc(title)}</h1><p class=\"muted\">"
             f"{esc(schema.label(TITLES['as_of'], lang).format(date=today.isoformat()))}</p>"
             "<div class=\"tiles\">"]
    for label, value in kpi_lines(a, lang):
        parts.append(f"<div class=\"tile\"><div class=\"label\">{esc(label)}</div>"
                     f"<div class=\"value\">{esc(value)}</div></div>")
    parts.append("</div>")
    for key, columns, chart, values in LAYOUT:
        table: pd.DataFrame = getattr(a, key)
        parts.append(f"<section><h2>{esc(schema.label(TITLES[key], lang))}</h2>")
        if chart and len(table):
            labels = [fmt(shown_cell(columns[0], v, lang)) for v in table[columns[0]]]
            series = [(schema.label(COLUMN_LABELS[v], lang),
                       [float(x) if x == x and x is not None else 0.0 for x in table[v]])
                      for v in values]
            parts.append(svg_bars(labels, series))
        parts.append("<table><thead><tr>" + "".join(
            f"<th>{esc(schema.label(COLUMN_LABELS[c], lang))}</th>" for c in columns)
            + "</tr></thead><tbody>")
        for record in table[list(columns)].to_dict("records"):
            cells = "".join(f"<td>{esc(fmt(shown_cell(c, record[c], lang), c))}</td>"
                            for c in columns)
            parts.append(f"<tr>{cells}</tr>")
        parts.append("</tbody></table></section>")
    parts.append("</body></html>")
    return "".join(parts)


def svg_bars(labels: Sequence[str], series: Sequence[tuple[str, Sequence[float]]]) -> str:
    """Horizontal grouped bars as inline SVG, with a legend when there is more than one
    series."""
    esc = html.escape
    top = max((max(values, default=0.0) for _, values in series), default=0.0) or 1.0
    bar, gap, left, width = 12, 8, 150, 420
    group = bar * len(series) + gap
    height = group * len(labels) + 30
    out = [f"<svg class=\"chart\" width=\"{left + width + 140}\" height=\"{height}\" "
           f"role=\"img\" xmlns=\"http://www.w3.org/2000/svg\">"]
    for i, label in enumerate(labels):
        y = i * group + 4
        out.append(f"<text x=\"{left - 6}\" y=\"{y + bar * len(series) / 2 + 4}\" "
                   f"text-anchor=\"end\">{esc(label)}</text>")
        for s, (_, values) in enumerate(series):
            value = values[i] if i < len(values) else 0.0
            w = max(0.0, value) / top * width
            out.append(f"<rect x=\"{left}\" y=\"{y + s * bar}\" width=\"{w:.1f}\" "
                       f"height=\"{bar - 2}\" fill=\"{PALETTE[s % len(PALETTE)]}\">"
                       f"<title>{esc(fmt(value))}</title></rect>")
            out.append(f"<text x=\"{left + w + 4:.1f}\" y=\"{y + s * bar + bar - 3}\" "
                       f"class=\"v\">{esc(fmt(value))}</text>")
    if len(series) > 1:
        for s, (name, _) in enumerate(series):
            y = height - 14 - 14 * (len(series) - 1 - s)
            out.append(f"<rect x=\"{left + width + 40}\" y=\"{y - 9}\" width=\"10\" "
                       f"height=\"10\" fill=\"{PALETTE[s % len(PALETTE)]}\"/>"
                       f"<text x=\"{left + width + 54}\" y=\"{y}\">{esc(name)}</text>")
    out.append("</svg>")
    return "".join(out)


_CSS = """
body{font-family:-apple-system,"Segoe UI","Microsoft YaHei","PingFang SC",sans-serif;
margin:24px;color:#222}h1{color:#1F4E78;margin-bottom:0}h2{color:#1F4E78;font-size:16px;
margin-top:28px}.muted{color:#666;font-size:12px}.tiles{display:flex;flex-wrap:wrap;gap:8px;
margin:16px 0}.tile{background:#DDEBF7;padding:8px 12px;min-width:170px}.tile .label{
font-size:12px;color:#404040}.tile .value{font-size:20px;font-weight:bold;color:#1F4E78}
table{border-collapse:collapse;font-size:13px}th,td{border-bottom:1px solid #ddd;
padding:3px 10px;text-align:right}th:first-child,td:first-child{text-align:left}
th{background:#1F4E78;color:#fff}.chart text{font-size:11px}.chart .v{fill:#555}
"""
