"""The Dashboard sheet: KPI tiles, the analytics tables as Excel Tables, and native charts that
point at them. Rebuilt in place on every run (the old sheet is replaced at the same position),
in the workbook's language, and protected like the other engine sheets.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from openpyxl.chart import BarChart, PieChart, Reference
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.table import Table, TableStyleInfo
from openpyxl.worksheet.worksheet import Worksheet

from . import schema
from .analytics import SEGMENT_LABELS, Analytics
from .edits import put
from .schema import Lang
from .template import protect_sheet

CHART_ROWS = 16  # rows a chart block takes
CHART_COLUMN = "F"
MONEY, PERCENT, DAYS = "#,##0", "0.0%", "0"

TITLES: dict[str, tuple[str, str]] = {
    "dashboard": ("Sales dashboard", "销售看板"),
    "as_of": ("As of {date} · rebuilt by xlcrm on every sync",
              "截至 {date} · 每次同步由 xlcrm 重建"),
    "pipeline": ("Pipeline by stage (open deals)", "各阶段商机（进行中）"),
    "forecast": ("Forecast by expected close month", "按预计成交月份的预测"),
    "funnel": ("Funnel: deals reaching each stage", "销售漏斗：到达各阶段的商机"),
    "time_in_stage": ("Time in stage (days)", "阶段停留时间（天）"),
    "win_by_owner": ("Win rate by owner", "各负责人赢单率"),
    "win_by_source": ("Win rate by source", "各来源赢单率"),
    "tiers": ("Customers by tier", "客户等级分布"),
    "lifecycle": ("Customers by lifecycle", "客户生命周期分布"),
    "segments": ("RFM segments", "RFM 客户分群"),
    "team": ("Team", "团队"),
    "attention": ("Deals needing attention", "需要关注的商机"),
    "largest_open": ("Largest open deals", "金额最大的进行中商机"),
    "top_customers": ("Top customers", "重点客户"),
    "dormant": ("Dormant customers to re-engage", "待唤醒的沉睡客户"),
    "dormant_count": (": {n} (the {shown} most valuable shown)",
                      "：共 {n} 个（列出价值最高的 {shown} 个）"),
    "activity_by_owner": ("Interactions by owner", "各负责人跟进次数"),
    "activity_by_customer": ("Most contacted customers (90 days)", "近 90 天跟进最多的客户"),
    "pool": ("Lead pool: {size} customers in the pool, {recycled} recycled and {claimed} "
             "claimed in the last 7 days; about to go back, by owner",
             "公海：池中 {size} 个客户，近 7 天回收 {recycled} 个、领取 {claimed} 个；"
             "即将回到公海的客户（按客户经理）"),
}

KPI_LABELS: dict[str, tuple[str, str]] = {
    "pipeline": ("Open pipeline", "进行中商机金额"),
    "weighted_pipeline": ("Weighted pipeline", "加权预测金额"),
    "won_amount": ("Won", "已赢单金额"),
    "win_rate": ("Win rate", "赢单率"),
    "avg_sales_cycle_days": ("Avg. sales cycle (days)", "平均成交周期（天）"),
    "forecast_6m_weighted": ("Forecast, 6 months", "未来 6 个月预测"),
    "open_deals": ("Open deals", "进行中商机数"),
    "stall_stage": ("Stalls most in", "停滞最多的阶段"),
}
KPI_FORMATS = {"win_rate": PERCENT, "avg_sales_cycle_days": DAYS, "open_deals": "0"}

COLUMN_LABELS: dict[str, tuple[str, str]] = {
    "stage": ("Stage", "阶段"), "deals": ("Deals", "商机数"), "amount": ("Amount", "金额"),
    "weighted": ("Weighted", "加权金额"), "month": ("Month", "月份"),
    "best_case": ("Best case", "最佳情况"), "reached": ("Reached", "到达数"),
    "conversion": ("To next stage", "转化到下一阶段"), "owner": ("Owner", "负责人"),
    "won": ("Won", "赢单"), "lost": ("Lost", "输单"), "win_rate": ("Win rate", "赢单率"),
    "source": ("Source", "来源"), "stays": ("Stays", "停留次数"),
    "median_days": ("Median days", "中位天数"), "p90_days": ("90th pct. days", "90 分位天数"),
    "current": ("There now", "当前数量"), "stalled": ("Stalled", "停滞数"),
    "tier": ("Tier", "客户等级"), "customers": ("Customers", "客户数"),
    "lifetime_value": ("Lifetime value", "累计成交金额"), "lifecycle": ("Lifecycle", "生命周期"),
    "segment": ("Segment", "分群"), "open_deals": ("Open deals", "进行中商机"),
    "pipeline": ("Pipeline", "商机金额"), "won_deals": ("Won deals", "成交次数"),
    "won_amount": ("Won amount", "成交金额"), "due_soon": ("Due soon", "即将回收"),
    "interactions_30d": ("Interactions 30 d", "30 天跟进"),
    "interactions_90d": ("Interactions 90 d", "90 天跟进"), "reason": ("Reason", "原因"),
    "opportunity_id": ("OpportunityID", "商机编号"), "title": ("Opportunity", "商机名称"),
    "detail": ("Detail", "说明"), "expected_close": ("Expected close", "预计成交日期"),
    "customer_id": ("CustomerID", "客户编号"), "name": ("Name", "客户名称"),
    "last_activity": ("Last activity", "最近活动"),
}
COLUMN_FORMATS = {"amount": MONEY, "weighted": MONEY, "best_case": MONEY, "pipeline": MONEY,
                  "won_amount": MONEY, "lifetime_value": MONEY, "conversion": PERCENT,
                  "win_rate": PERCENT, "median_days": "0.0", "p90_days": "0.0",
                  "expected_close": "yyyy-mm-dd", "last_activity": "yyyy-mm-dd"}
REASON_LABELS = {"stalled": ("Stalled", "停滞"), "no-follow-up": ("No follow-up", "未跟进"),
                 "close-date-past": ("Close date passed", "已过预计成交日期")}
OVERDUE = ("Overdue", "已逾期")

# (table key, columns shown, chart kind or None, chart value columns)
LAYOUT: tuple[tuple[str, tuple[str, ...], str | None, tuple[str, ...]], ...] = (
    ("pipeline", ("stage", "deals", "amount", "weighted"), "bar", ("amount", "weighted")),
    ("forecast", ("month", "deals", "weighted", "best_case"), "col", ("weighted", "best_case")),
    ("funnel", ("stage", "reached", "conversion"), "bar", ("reached",)),
    ("tiers", ("tier", "customers", "lifetime_value"), "pie", ("customers",)),
    ("lifecycle", ("lifecycle", "customers"), "bar", ("customers",)),
    ("time_in_stage", ("stage", "stays", "median_days", "p90_days", "current", "stalled"), None,
     ()),
    ("segments", ("segment", "customers", "lifetime_value"), None, ()),
    ("win_by_owner", ("owner", "won", "lost", "win_rate"), None, ()),
    ("win_by_source", ("source", "won", "lost", "win_rate"), None, ()),
    ("team", ("owner", "open_deals", "pipeline", "weighted", "won_deals", "won_amount",
              "interactions_30d"), None, ()),
    ("attention", ("reason", "opportunity_id", "title", "owner", "stage", "amount", "detail"),
     None, ()),
    ("largest_open", ("opportunity_id", "title", "owner", "stage", "amount", "expected_close"),
     None, ()),
    ("top_customers", ("customer_id", "name", "owner", "lifetime_value", "won_deals"), None, ()),
    ("dormant", ("customer_id", "name", "owner", "last_activity", "lifetime_value"), None, ()),
    ("activity_by_owner", ("owner", "interactions_30d", "interactions_90d"), None, ()),
    ("activity_by_customer", ("customer_id", "name", "interactions_30d", "interactions_90d"),
     None, ()),
)
ATTENTION_ROWS = 200  # the attention list shows the first rows; the Issues sheet has them all

TITLE_FONT = Font(bold=True, size=16, color="1F4E78")
BLOCK_FONT = Font(bold=True, size=12, color="1F4E78")
TILE_FILL = PatternFill("solid", fgColor="DDEBF7")
TILE_LABEL = Font(size=9, color="404040")
TILE_VALUE = Font(bold=True, size=14, color="1F4E78")


@dataclass
class Chart:
    """A chart over one block: its kind, the block's header and last row, the value columns
    (1-based), and the row it is anchored at."""

    kind: str
    key: str
    title: str
    header: int
    last: int
    values: tuple[int, ...]
    anchor: int


@dataclass
class Layout:
    """The Dashboard as both backends draw it: cells (row, column, value, number format,
    look), merged ranges, Tables and charts."""

    lang: Lang
    cells: list[tuple[int, int, Any, str | None, str | None]] = field(default_factory=list)
    merges: list[tuple[int, int, int, int]] = field(default_factory=list)
    tables: list[tuple[str, str]] = field(default_factory=list)  # (name, ref)
    charts: list[Chart] = field(default_factory=list)

    def digest(self) -> str:
        text = json.dumps([self.lang, self.cells, self.merges, self.tables,
                           [vars(c) for c in self.charts]], default=str, ensure_ascii=False)
        return hashlib.sha256(text.encode()).hexdigest()

    def put(self, row: int, column: int, value: Any, number_format: str | None = None,
            look: str | None = None) -> None:
        self.cells.append((row, column, value, number_format, look))


LOOKS = {"title": TITLE_FONT, "block": BLOCK_FONT, "label": TILE_LABEL, "value": TILE_VALUE}


def layout(analytics: Analytics, lang: Lang, today: dt.date) -> Layout:
    """The Dashboard of `analytics` as of `today`, in `lang`."""
    out = Layout(lang)
    out.put(1, 1, _t("dashboard", lang), look="title")
    notes = ("; " if lang == "en" else "；").join(analytics.note_lines(lang))
    out.put(2, 1, _t("as_of", lang).format(date=today.isoformat()) + (
        " · " + notes if notes else ""), look="label")
    _tiles(out, analytics.kpis, lang)
    row = 7
    for key, columns, chart, values in LAYOUT:
        table = getattr(analytics, key)
        title = _t(key, lang)
        if key == "attention":
            table = table.head(ATTENTION_ROWS)
        if key == "dormant":
            title += _t("dormant_count", lang).format(
                n=analytics.kpis.get("dormant_customers", len(table)), shown=len(table))
        row = _block(out, key, table, columns, chart, values, row, lang, title)
    if "pool_size" in analytics.kpis:  # the lead pool is on
        kpis = analytics.kpis
        title = _t("pool", lang).format(size=kpis["pool_size"],
                                        recycled=kpis["pool_recycled_week"],
                                        claimed=kpis["pool_claimed_week"])
        row = _block(out, "pool", analytics.pool, ("owner", "due_soon"), None, (), row, lang,
                     title)
    return out


def render_openpyxl(plan: Layout, ws: Worksheet) -> None:
    """Draw `plan` on an empty openpyxl sheet (the file backend grafts it into the workbook)."""
    ws.sheet_properties.tabColor = "1F4E78"
    ws.sheet_view.showGridLines = False
    for row, column, value, number_format, look in plan.cells:
        cell = ws.cell(row=row, column=column)
        put(cell, value)
        if number_format:
            cell.number_format = number_format
        if look:
            cell.font = LOOKS[look]
        if look in ("label", "value") and row > 2:
            cell.fill = TILE_FILL
            cell.alignment = Alignment(horizontal="left", vertical="center")
            ws.cell(row=row, column=column + 1).fill = TILE_FILL
    for r1, c1, r2, c2 in plan.merges:
        ws.merge_cells(start_row=r1, start_column=c1, end_row=r2, end_column=c2)
    for name, ref in plan.tables:
        excel_table = Table(displayName=name, ref=ref)
        excel_table.tableStyleInfo = TableStyleInfo(name="TableStyleLight9", showRowStripes=True)
        ws.add_table(excel_table)
    for chart in plan.charts:
        ws.add_chart(_chart(ws, chart), f"{CHART_COLUMN}{chart.anchor}")
    for index, width in enumerate((16, 24, 14, 14, 14, 14, 40), start=1):
        ws.column_dimensions[get_column_letter(index)].width = width
    ws.page_setup.orientation = "landscape"  # printed (and PDF) one page wide
    ws.page_setup.fitToWidth, ws.page_setup.fitToHeight = 1, 0
    ws.sheet_properties.pageSetUpPr.fitToPage = True
    protect_sheet(ws)


def _t(key: str, lang: Lang) -> str:
    return schema.label(TITLES[key], lang)


def _tiles(out: Layout, kpis: dict[str, Any], lang: Lang) -> None:
    currency = kpis.get("currency") or ""
    for index, key in enumerate(KPI_LABELS):
        column = 1 + 2 * (index % 4)
        row = 3 + 2 * (index // 4)
        label = schema.label(KPI_LABELS[key], lang)
        if KPI_FORMATS.get(key, MONEY) == MONEY and key != "stall_stage":
            label = f"{label} ({currency})"
        value = kpis.get(key)
        out.put(row, column, label, look="label")
        out.put(row + 1, column, "—" if value is None else _plain(value),
                KPI_FORMATS.get(key, MONEY), look="value")
        out.merges.append((row, column, row, column + 1))
        out.merges.append((row + 1, column, row + 1, column + 1))


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _block(out: Layout, key: str, table: pd.DataFrame, columns: tuple[str, ...],
           chart: str | None, values: tuple[str, ...], row: int, lang: Lang,
           title: str | None = None) -> int:
    """Lay out one titled table (and its chart); return the next free row."""
    out.put(row, 1, title or _t(key, lang), look="block")
    header = row + 1
    for offset, column in enumerate(columns, start=1):
        out.put(header, offset, schema.label(COLUMN_LABELS[column], lang))
    records = table[list(columns)].to_dict("records") if len(table) else []
    for r, record in enumerate(records, start=header + 1):
        for offset, column in enumerate(columns, start=1):
            out.put(r, offset, shown_cell(column, record[column], lang),
                    COLUMN_FORMATS.get(column))
    last = header + max(len(records), 1)
    out.tables.append((f"dash_{key}", f"A{header}:{get_column_letter(len(columns))}{last}"))
    end = last + 2
    if chart and records:
        out.charts.append(Chart(chart, key, _t(key, lang), header, last,
                                tuple(columns.index(v) + 1 for v in values), row))
        end = max(end, row + CHART_ROWS + 1)
    return end


def shown_cell(column: str, value: Any, lang: Lang) -> Any:
    if value is None or value is pd.NaT or (isinstance(value, float) and value != value):
        return None
    if value is pd.NA:
        return None
    if column == "month" and value == "overdue":
        return schema.label(OVERDUE, lang)
    if column == "reason":
        return schema.label(REASON_LABELS.get(str(value), (str(value),) * 2), lang)
    if column == "segment" and lang == "zh":
        return SEGMENT_LABELS.get(str(value), value)
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value


def _chart(ws: Worksheet, spec: Chart) -> Any:
    labels = Reference(ws, min_col=1, min_row=spec.header + 1, max_row=spec.last)
    chart: Any
    if spec.kind == "pie":
        chart = PieChart()
    else:
        chart = BarChart()
        chart.type = "bar" if spec.kind == "bar" else "col"
        chart.grouping = "clustered"
        if spec.kind == "bar":
            chart.x_axis.scaling.orientation = "maxMin"  # first stage on top
            chart.y_axis.crosses = "max"  # and the value axis below
        chart.y_axis.majorGridlines = None
        chart.x_axis.delete = False
        chart.y_axis.delete = False
    for column in spec.values:
        chart.add_data(Reference(ws, min_col=column, min_row=spec.header, max_row=spec.last),
                       titles_from_data=True)
    chart.set_categories(labels)
    chart.title = spec.title
    chart.height, chart.width = 7.5, 15
    if len(spec.values) == 1 and spec.kind != "pie":
        chart.legend = None
    return chart
