"""Pipeline, forecast, funnel, win rate, cycle time, time in stage, attention lists, customer
segments (tier, lifecycle, RFM) and team figures.

Pure: frames and settings in, tables out; no IO. Columns are converted once, vectorised, with
the cell-by-cell parsers of `xlcrm.normalize` only for the few cells pandas cannot read (a
typed "2026年11月25日", "¥1,200"). Cells validation flags as invalid count as blank here.

RFM scores use fixed, explainable bands rather than quantiles (a score means the same thing in
every workbook and can be checked by hand):

- R (recency of the last interaction or won deal): 5 within 30 days, 4 within 90, 3 within
  180, 2 within 365, else 1.
- F (interactions plus won deals in the last 365 days): 5 from 20, 4 from 10, 3 from 5, 2 from
  2, else 1.
- M (lifetime value): 5 from the highest tier threshold in Settings, 4 from the second, 3 from
  half the second, 2 above zero, else 1.

Segments from R and F: Champions (R≥4, F≥4), Loyal (R≥3, F≥3), Promising (R≥4), At risk
(R≤2, F≥3), Hibernating (R≤2), Needs attention (the rest). Champions, Loyal and At risk need
a purchase (a won deal or a lifetime value): a prospect with many calls is Promising at best.

Dormant customers follow the lifecycle rule promotion applies: no purchase, interaction or
creation within `dormant_days`, or marked Dormant by hand; a customer marked Churned is not
dormant. The KPI `dormant_customers` counts them all; the table lists the most valuable.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from . import normalize as nz
from . import progress
from .issues import Code, Report
from .reader import WorkbookData
from .schema import normalize_value
from .settings import Settings, Stage

FORECAST_MONTHS = 6
DORMANT_SHOWN = 20  # rows of the dormant table on the Dashboard (the KPI counts them all)
DORMANT_WORDS = frozenset(normalize_value(w) for w in ("Dormant", "沉睡"))
CHURNED_WORDS = frozenset(normalize_value(w) for w in ("Churned", "流失"))
TOP_N = 10
SEGMENTS = ("Champions", "Loyal", "Promising", "Needs attention", "At risk", "Hibernating")
SEGMENT_LABELS = {"Champions": "重要价值客户", "Loyal": "忠诚客户", "Promising": "新兴潜力客户",
                  "Needs attention": "需关注客户", "At risk": "流失风险客户",
                  "Hibernating": "沉睡客户"}


@dataclass
class Analytics:
    """Every figure of the dashboard. Tables are DataFrames with stable column keys."""

    kpis: dict[str, Any]
    pipeline: pd.DataFrame  # stage, deals, amount, weighted
    forecast: pd.DataFrame  # month, deals, weighted, best_case (plus an "overdue" row first)
    funnel: pd.DataFrame  # stage, reached, conversion (to the next stage)
    win_by_owner: pd.DataFrame  # owner, won, lost, win_rate
    win_by_source: pd.DataFrame  # source, won, lost, win_rate
    time_in_stage: pd.DataFrame  # stage, stays, median_days, p90_days, current, stalled
    attention: pd.DataFrame  # reason, opportunity_id, title, owner, stage, amount, detail
    largest_open: pd.DataFrame  # opportunity_id, title, owner, stage, amount, expected_close
    tiers: pd.DataFrame  # tier, customers, lifetime_value
    lifecycle: pd.DataFrame  # lifecycle, customers
    rfm: pd.DataFrame  # customer_id, name, recency_days, frequency, monetary, r, f, m, segment
    segments: pd.DataFrame  # segment, customers, lifetime_value
    top_customers: pd.DataFrame  # customer_id, name, owner, lifetime_value, won_deals
    dormant: pd.DataFrame  # customer_id, name, owner, last_activity, lifetime_value
    activity_by_owner: pd.DataFrame  # owner, interactions_30d, interactions_90d
    activity_by_customer: pd.DataFrame  # customer_id, name, interactions_30d, interactions_90d
    team: pd.DataFrame  # owner, open_deals, pipeline, weighted, won_deals, won_amount,
    #                     interactions_30d
    notes: list[tuple[str, str]] = field(default_factory=list)  # (English, Chinese)
    pool: pd.DataFrame = field(  # owner, due_soon: customers about to go back to the pool
        default_factory=lambda: pd.DataFrame({"owner": [], "due_soon": []}))

    def note_lines(self, lang: str) -> list[str]:
        return [pair[0 if lang == "en" else 1] for pair in self.notes]

    def tables(self) -> dict[str, pd.DataFrame]:
        return {name: value for name, value in vars(self).items()
                if isinstance(value, pd.DataFrame)}

    def to_json(self) -> dict[str, Any]:
        return {"version": 1, "kpis": _plain(self.kpis),
                **{name: [_plain(r) for r in table.to_dict("records")]
                   for name, table in self.tables().items()}}


def analyse(data: WorkbookData, today: dt.date | None = None, report: Report | None = None,
            stays: pd.DataFrame | None = None, pool: Any = None) -> Analytics:
    """All figures for one workbook.

    Args:
        data: the workbook as read (after sync's steps, when called from sync).
        today: the date figures are computed against.
        report: the validation report; its stalled / no-follow-up / close-date-past warnings
            make the attention list.
        stays: the stage history (`xlcrm.changes.stage_history`); without it time in stage is
            the current stays only, from Stage Changed (or Created).
        pool: the lead pool's figures (`xlcrm.pool.figures`), shown when the pool is on.
    """
    progress.step("analyse")
    today = today or dt.date.today()
    now = pd.Timestamp(today)
    settings = data.settings
    day_first = settings.day_first
    opps = _opportunities(data.sheets["opportunities"].frame, settings)
    customers = _customers(data.sheets["customers"].frame, day_first)
    inter = _interactions(data.sheets["interactions"].frame, day_first)
    stages = sorted(settings.stages, key=lambda s: s.order)
    open_stages = [s for s in stages if s.kind == "open"]
    is_open, is_won, is_lost = (opps["kind"] == "open", opps["kind"] == "won",
                                opps["kind"] == "lost")

    pipeline = _pipeline(opps[is_open], open_stages)
    forecast = _forecast(opps[is_open], now)
    funnel = _funnel(opps, stages, stays)
    win_owner = _win_rate(opps, "owner")
    win_source = _win_rate(opps, "source")
    cycle = (opps.loc[is_won, "closed"] - opps.loc[is_won, "created"]).dt.days.dropna()
    cycle = cycle[cycle >= 0]
    in_stage = _time_in_stage(opps, stages, stays, now, report)
    attention = _attention(opps, report)
    largest = (opps[is_open].sort_values("amount_n", ascending=False, na_position="last")
               .head(TOP_N))[["opportunity_id", "title", "owner", "stage", "amount_n",
                              "expected"]].rename(columns={"amount_n": "amount",
                                                           "expected": "expected_close"})
    activity = _activity(customers, opps, inter, now)
    rfm = _rfm(customers, activity, settings, now)
    segments = (rfm.groupby("segment").agg(customers=("customer_id", "size"),
                                           lifetime_value=("monetary", "sum"))
                .reindex(list(SEGMENTS)).fillna(0).astype({"customers": int}).reset_index()
                ) if len(rfm) else (
        pd.DataFrame({"segment": list(SEGMENTS), "customers": 0, "lifetime_value": 0.0}))
    tiers = _count_by(customers, "tier", settings.choices("tier"))
    lifecycle = _count_by(customers, "lifecycle", settings.choices("lifecycle"))
    top = (customers.sort_values("ltv", ascending=False).head(TOP_N)
           [["customer_id", "name", "owner", "ltv", "won_n"]]
           .rename(columns={"ltv": "lifetime_value", "won_n": "won_deals"}))
    top = top[top["lifetime_value"] > 0]
    dormant_all = _dormant(customers, activity, settings, now)
    dormant = dormant_all.head(DORMANT_SHOWN)
    by_owner, by_customer = _frequency(customers, inter, now)
    team = _team(opps, inter, now)

    won_amount = float(opps.loc[is_won, "amount_n"].sum())
    closed = int(is_won.sum() + is_lost.sum())
    stalled_stage = _stall_leader(in_stage)
    kpis = {
        "open_deals": int(is_open.sum()),
        "pipeline": float(pipeline["amount"].sum()),
        "weighted_pipeline": float(pipeline["weighted"].sum()),
        "won_deals": int(is_won.sum()),
        "won_amount": won_amount,
        "win_rate": (float(is_won.sum()) / closed) if closed else None,
        "avg_sales_cycle_days": float(cycle.mean()) if len(cycle) else None,
        "forecast_6m_weighted": float(forecast.loc[forecast["month"] != "overdue",
                                                   "weighted"].sum()),
        "overdue_deals": int(forecast.loc[forecast["month"] == "overdue", "deals"].sum()),
        "customers": int(len(customers)),
        "active_customers": int((activity["last_activity"] >= now - pd.Timedelta(days=90))
                                .sum()) if len(activity) else 0,
        "stall_stage": stalled_stage,
        "dormant_customers": int(len(dormant_all)),
        "currency": settings.options.default_currency,
    }
    pool_table = None
    if pool is not None and settings.options.pool_enabled:
        kpis |= {"pool_size": pool.in_pool, "pool_recycled_week": pool.recycled_week,
                 "pool_claimed_week": pool.claimed_week}
        pool_table = pd.DataFrame(pool.due_by_owner, columns=["owner", "due_soon"])
    extra = {} if pool_table is None else {"pool": pool_table}
    return Analytics(kpis=kpis, pipeline=pipeline, forecast=forecast, funnel=funnel,
                     win_by_owner=win_owner, win_by_source=win_source,
                     time_in_stage=in_stage, attention=attention, largest_open=largest,
                     tiers=tiers, lifecycle=lifecycle, rfm=rfm, segments=segments,
                     top_customers=top, dormant=dormant, activity_by_owner=by_owner,
                     activity_by_customer=by_customer, team=team,
                     notes=currency_notes(opps, settings), **extra)


# ---------------------------------------------------------------------------------------------
# Column conversion

def _counts(values: pd.Series) -> pd.Series:
    """Whole numbers, blanks as 0, whatever the dtype (an empty or all-missing object column
    included: pandas 2 warns when fillna would downcast one)."""
    return pd.to_numeric(values, errors="coerce").astype(float).fillna(0).astype("int64")


def _lookup(series: pd.Series, convert: Callable[[Any], Any]) -> pd.Series:
    """Map a column through `convert`, once per distinct value."""
    table = {value: convert(value) for value in series.dropna().unique()}
    return series.astype(object).map(table).astype(object)


def _text(series: pd.Series) -> pd.Series:
    if pd.api.types.infer_dtype(series, skipna=True) in ("string", "empty"):
        return series.fillna("")  # calamine keeps cells as typed
    return _lookup(series, nz.text).fillna("")


def _opportunities(frame: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    codes, uniques = pd.factorize(frame["stage"])  # once; each attribute is then a take
    found = [settings.stage(v) for v in uniques]

    def attr(name: str) -> pd.Series:
        table = np.array([getattr(s, name, None) for s in found] + [None], dtype=object)
        return pd.Series(table[codes], index=frame.index)  # code -1 (blank) takes the None

    day_first = settings.day_first
    created = nz.date_column(frame["created_at"], day_first)
    changed = nz.date_column(frame["stage_changed_at"], day_first)
    currency = _text(frame["currency"]).str.upper().replace(
        "", settings.options.default_currency.strip().upper())
    rate = currency.map(settings.rates()).astype("float64")
    out = pd.DataFrame({
        "opportunity_id": _text(frame["opportunity_id"]),
        "title": _text(frame["title"]),
        "customer_id": _text(frame["customer_id"]),
        "owner": _text(frame["owner"]),
        "source": _text(frame["source"]),
        "stage": attr("name"),
        "kind": attr("kind"),
        "order": attr("order"),
        "stage_probability": attr("probability").astype(float),
        "currency": currency,
        "amount_raw": nz.number_column(frame["amount"]),
        "expected": nz.date_column(frame["expected_close"], day_first),
        "created": created,
        "closed": nz.date_column(frame["closed_at"], day_first).fillna(changed),
        "changed": changed.fillna(created),
    }, index=frame.index)
    out["amount_n"] = out["amount_raw"] * rate  # in the default currency; NaN without a rate
    probability = nz.fraction_column(frame["probability"])  # 60, 0.6 and "60%" alike
    out["probability"] = probability.where(probability.between(0, 1)).fillna(
        out["stage_probability"])
    out["weighted"] = out["amount_n"] * out["probability"]
    return out


def currency_notes(opps: pd.DataFrame, settings: Settings) -> list[tuple[str, str]]:
    """What the money figures are in: the default currency, which currencies were converted
    at which rate, and which were left out for want of a rate (never added as one)."""
    default = settings.options.default_currency.strip().upper()
    rates = settings.rates()
    priced = opps[opps["amount_raw"].notna()]
    used = sorted(set(priced["currency"]) - {default})
    converted = [c for c in used if c in rates]
    missing = priced[~priced["currency"].isin(rates)]
    notes = [(f"Amounts in {default}", f"金额单位：{default}")]
    if converted:
        listed = ", ".join(f"{c} at {rates[c]:g}" for c in converted)
        listed_zh = "，".join(f"{c} 按 {rates[c]:g}" for c in converted)
        notes.append((f"converted: {listed}", f"已换算：{listed_zh}"))
    if len(missing):
        codes = ", ".join(sorted(set(missing["currency"])))
        notes.append((f"{len(missing)} deals in {codes} left out of money totals (no exchange "
                      "rate under Settings → Options → exchange_rates)",
                      f"{len(missing)} 个以 {codes} 计价的商机未计入金额合计（设置 → 选项 → "
                      "exchange_rates 中没有汇率）"))
    return notes


def _customers(frame: pd.DataFrame, day_first: bool) -> pd.DataFrame:
    return pd.DataFrame({
        "customer_id": _text(frame["customer_id"]),
        "name": _text(frame["name"]),
        "owner": _text(frame["owner"]),
        "tier": _text(frame["tier"]),
        "lifecycle": _text(frame["lifecycle"]),
        "ltv": nz.number_column(frame["lifetime_value"]).fillna(0.0),
        "won_n": nz.number_column(frame["won_deals"]).fillna(0).astype(int),
        "created": nz.date_column(frame["created_at"], day_first),
    }, index=frame.index)


def _interactions(frame: pd.DataFrame, day_first: bool) -> pd.DataFrame:
    return pd.DataFrame({  # categories: factorised once, then every groupby is cheap
        "customer_id": _text(frame["customer_id"]).astype("category"),
        "owner": _text(frame["owner"]).astype("category"),
        "date": nz.date_column(frame["date"], day_first),
    }, index=frame.index)


# ---------------------------------------------------------------------------------------------
# Pipeline, forecast, funnel, win rate

def _pipeline(opps: pd.DataFrame, stages: list[Stage]) -> pd.DataFrame:
    grouped = opps.groupby("stage").agg(deals=("opportunity_id", "size"),
                                        amount=("amount_n", "sum"),
                                        weighted=("weighted", "sum"))
    names = [s.name for s in stages]
    table = grouped.reindex(names).fillna(0).reset_index().rename(columns={"index": "stage"})
    table["deals"] = table["deals"].astype(int)
    return table[["stage", "deals", "amount", "weighted"]]


def _forecast(opps: pd.DataFrame, now: pd.Timestamp) -> pd.DataFrame:
    """Open deals by expected-close month for the next 6 months (this month first); deals whose
    expected close has passed are one "overdue" row, apart."""
    start = now.to_period("M")
    months = [start + i for i in range(FORECAST_MONTHS)]
    period = opps["expected"].dt.to_period("M")
    overdue = opps["expected"] < now
    rows = [{"month": "overdue", "deals": int(overdue.sum()),
             "weighted": float(opps.loc[overdue, "weighted"].sum()),
             "best_case": float(opps.loc[overdue, "amount_n"].sum())}]
    for month in months:
        mask = (period == month) & ~overdue
        rows.append({"month": str(month), "deals": int(mask.sum()),
                     "weighted": float(opps.loc[mask, "weighted"].sum()),
                     "best_case": float(opps.loc[mask, "amount_n"].sum())})
    return pd.DataFrame(rows)


def _funnel(opps: pd.DataFrame, stages: list[Stage], stays: pd.DataFrame | None) -> pd.DataFrame:
    """How many deals reached each open stage and won, and the conversion to the next one.

    A deal reached every open stage up to its current one (a won deal: all of them). A lost
    deal reached the furthest stage the stage history saw it in; without history, the first.
    """
    open_stages = [s for s in stages if s.kind == "open"]
    won = next((s for s in stages if s.kind == "won"), None)
    steps = [*open_stages, *([won] if won else [])]
    rank = {normalize_value(s.name): i for i, s in enumerate(steps)}
    furthest = _lookup(opps["stage"], lambda n: rank.get(normalize_value(n)))
    lost = opps["kind"] == "lost"
    if stays is not None and not stays.empty and lost.any():
        seen = stays.assign(rank=stays["stage"].map(lambda n: rank.get(normalize_value(n))))
        best = seen.dropna(subset=["rank"]).groupby("opportunity_id")["rank"].max()
        furthest = furthest.where(~lost, opps["opportunity_id"].map(best))
    furthest = furthest.where(~lost | furthest.notna(), 0 if steps else None)
    reached = [int((furthest >= i).sum()) for i in range(len(steps))]
    conversion = [reached[i + 1] / reached[i] if i + 1 < len(steps) and reached[i] else None
                  for i in range(len(steps))]
    return pd.DataFrame({"stage": [s.name for s in steps], "reached": reached,
                         "conversion": conversion})


def _win_rate(opps: pd.DataFrame, by: str) -> pd.DataFrame:
    closed = opps[opps["kind"].isin(["won", "lost"])]
    table = (closed.assign(won=closed["kind"].eq("won"), lost=closed["kind"].eq("lost"))
             .groupby(by)[["won", "lost"]].sum().astype(int).reset_index())
    table = table[table[by] != ""]
    total = table["won"] + table["lost"]
    table["win_rate"] = (table["won"] / total).where(total > 0)
    return table.sort_values(["win_rate", "won"], ascending=False).reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# Time in stage and attention

def stage_durations(stays: pd.DataFrame, stage_order: Sequence[str] = ()) -> pd.DataFrame:
    """Per stage: stays, median and 90th-percentile days, and how many are there now (`left`
    is NaT), ordered as `stage_order`. `stays` has stage, days and left columns, e.g. from
    `xlcrm.changes.stage_history`."""
    if stays.empty:
        return pd.DataFrame(columns=["stage", "stays", "median_days", "p90_days", "current"])
    grouped = stays.groupby("stage")
    table = pd.DataFrame({
        "stays": grouped.size(),
        "median_days": grouped["days"].median(),
        "p90_days": grouped["days"].quantile(0.9),
        "current": grouped["left"].apply(lambda s: int(s.isna().sum())),
    }).reset_index()
    order = {normalize_value(s): i for i, s in enumerate(stage_order)}
    table["_order"] = table["stage"].map(lambda s: order.get(normalize_value(s), len(order)))
    return table.sort_values(["_order", "stage"]).drop(columns="_order").reset_index(drop=True)


def _time_in_stage(opps: pd.DataFrame, stages: list[Stage], stays: pd.DataFrame | None,
                   now: pd.Timestamp, report: Report | None) -> pd.DataFrame:
    names = [s.name for s in stages if s.kind == "open"]
    if stays is None or stays.empty:  # current stays only, from Stage Changed (or Created)
        current = opps[opps["kind"] == "open"]
        stays = pd.DataFrame({"stage": current["stage"],
                              "days": (now - current["changed"]).dt.days,
                              "left": pd.NaT}).dropna(subset=["days"])
    table = stage_durations(stays[stays["stage"].isin(names)], names)
    table = table.set_index("stage").reindex(names).reset_index()
    table["stays"] = _counts(table["stays"])
    table["current"] = _counts(table["current"])
    stalled = pd.Series(0, index=table.index)
    if report is not None:
        by_id = opps.set_index("opportunity_id")["stage"]
        ids = [i.record_id for i in report.issues if i.code == Code.STALLED and i.record_id]
        counts = by_id[by_id.index.isin(ids)].value_counts()
        stalled = _counts(table["stage"].map(counts))
    table["stalled"] = stalled
    return table[["stage", "stays", "median_days", "p90_days", "current", "stalled"]]


def _stall_leader(table: pd.DataFrame) -> str | None:
    """The stage where deals stall most: most stalled deals, then the longest median stay;
    None when no deal is stalled."""
    if table.empty or table["stalled"].sum() == 0:
        return None
    ranked = table.sort_values(["stalled", "median_days"], ascending=False, na_position="last")
    return str(ranked["stage"].iloc[0])


ATTENTION_CODES = (Code.STALLED, Code.NO_FOLLOW_UP, Code.CLOSE_DATE_PAST)


def _attention(opps: pd.DataFrame, report: Report | None) -> pd.DataFrame:
    columns = ["reason", "opportunity_id", "title", "owner", "stage", "amount", "detail"]
    if report is None:
        return pd.DataFrame(columns=columns)
    found = pd.DataFrame([(str(i.code), i.record_id, i.message) for i in report.issues
                          if i.code in ATTENTION_CODES and i.record_id],
                         columns=["reason", "opportunity_id", "detail"])
    info = (opps.drop_duplicates("opportunity_id")
            [["opportunity_id", "title", "owner", "stage", "amount_n"]]
            .rename(columns={"amount_n": "amount"}))
    table = found.merge(info, on="opportunity_id", how="inner")[columns]
    order = {str(c): i for i, c in enumerate(ATTENTION_CODES)}
    return (table.assign(_o=table["reason"].map(order))
            .sort_values(["_o", "amount"], ascending=[True, False], na_position="last")
            .drop(columns="_o").reset_index(drop=True))


# ---------------------------------------------------------------------------------------------
# Customers

def _activity(customers: pd.DataFrame, opps: pd.DataFrame, inter: pd.DataFrame,
              now: pd.Timestamp) -> pd.DataFrame:
    """Per customer: last activity (interaction or won deal) and activity count in 365 days."""
    won = opps[opps["kind"] == "won"]
    year_ago = now - pd.Timedelta(days=365)
    ids = customers["customer_id"]
    last = pd.Series(pd.NaT, index=customers.index, dtype="datetime64[ns]")
    count = pd.Series(0, index=customers.index, dtype="int64")
    for events, date in ((inter, "date"), (won, "closed")):
        dated = events[(events["customer_id"] != "") & events[date].notna()]
        keys = dated["customer_id"].astype(object)  # plain values, whatever the dtype
        newest = dated[date].groupby(keys).max().to_dict()
        last = nz.latest(last, nz.as_datetimes(ids.map(newest)))
        recent = keys[dated[date] > year_ago].value_counts().to_dict()
        count = count + _counts(ids.map(recent))
    return pd.DataFrame({"customer_id": ids, "last_activity": last, "frequency": count},
                        index=customers.index)


def _bands(values: pd.Series, limits: list[float], descending: bool) -> pd.Series:
    """Score 5..1 by the first limit a value meets (limits from score 5 down to score 2)."""
    score = pd.Series(1, index=values.index)
    for points, limit in zip((2, 3, 4, 5), reversed(limits), strict=True):
        meets = values <= limit if descending else values >= limit
        score = score.where(~meets, points)
    return score


def _rfm(customers: pd.DataFrame, activity: pd.DataFrame, settings: Settings,
         now: pd.Timestamp) -> pd.DataFrame:
    recency = (now - activity["last_activity"]).dt.days
    r = _bands(recency.fillna(10**6), [30, 90, 180, 365], descending=True)
    f = _bands(activity["frequency"], [20, 10, 5, 2], descending=False)
    tiers = [minimum for _, minimum in settings.tiers() if minimum > 0]
    high = tiers[0] if tiers else 500_000.0
    second = tiers[1] if len(tiers) > 1 else high / 5
    m = _bands(customers["ltv"], [high, second, second / 2, 0.01], descending=False)
    bought = (customers["ltv"] > 0) | (customers["won_n"] > 0)  # never bought: never loyal
    segment = np.select(
        [bought & (r >= 4) & (f >= 4), bought & (r >= 3) & (f >= 3), r >= 4,
         bought & (r <= 2) & (f >= 3), r <= 2],
        ["Champions", "Loyal", "Promising", "At risk", "Hibernating"], "Needs attention")
    return pd.DataFrame({
        "customer_id": customers["customer_id"], "name": customers["name"],
        "recency_days": recency.astype("Int64"), "frequency": activity["frequency"],
        "monetary": customers["ltv"], "r": r, "f": f, "m": m, "segment": segment,
    }).reset_index(drop=True)


def _count_by(customers: pd.DataFrame, column: str, order: list[str]) -> pd.DataFrame:
    grouped = customers.groupby(column).agg(customers=("customer_id", "size"),
                                            lifetime_value=("ltv", "sum"))
    known = [v for v in order if v in grouped.index]
    rest = sorted(v for v in grouped.index if v not in order and v != "")
    blank = [""] if "" in grouped.index else []
    table = grouped.reindex([*known, *rest, *blank]).reset_index()
    table[column] = table[column].replace("", "—")
    table["customers"] = table["customers"].astype(int)
    return table if column == "tier" else table[[column, "customers"]]


def _dormant(customers: pd.DataFrame, activity: pd.DataFrame, settings: Settings,
             now: pd.Timestamp) -> pd.DataFrame:
    """Customers to re-engage: no activity for `dormant_days` (or marked dormant), who have
    bought before; the most valuable first."""
    horizon = now - pd.Timedelta(days=settings.options.dormant_days)
    marked = customers["lifecycle"].map(lambda v: normalize_value(v) in DORMANT_WORDS)
    churned = customers["lifecycle"].map(lambda v: normalize_value(v) in CHURNED_WORDS)
    last = nz.latest(activity["last_activity"], customers["created"])
    quiet = last.notna() & (last < horizon)
    pick = ((quiet & ~churned) | marked).astype(bool)
    table = pd.DataFrame({"customer_id": customers["customer_id"], "name": customers["name"],
                          "owner": customers["owner"],
                          "last_activity": activity["last_activity"],
                          "lifetime_value": customers["ltv"]})[pick]
    return table.sort_values("lifetime_value", ascending=False).reset_index(drop=True)


def _frequency(customers: pd.DataFrame, inter: pd.DataFrame,
               now: pd.Timestamp) -> tuple[pd.DataFrame, pd.DataFrame]:
    d30 = inter["date"] > now - pd.Timedelta(days=30)
    d90 = inter["date"] > now - pd.Timedelta(days=90)
    flags = inter.assign(interactions_30d=d30 & (inter["date"] <= now),
                         interactions_90d=d90 & (inter["date"] <= now))
    cols = ["interactions_30d", "interactions_90d"]
    by_owner = (flags[flags["owner"] != ""].groupby("owner", observed=True)[cols].sum()
                .astype(int))
    by_owner = by_owner.sort_values(cols[::-1], ascending=False).reset_index()
    by_owner["owner"] = by_owner["owner"].astype(object)  # plain values, not categories
    by_customer = (flags[flags["customer_id"] != ""].groupby("customer_id", observed=True)
                   [cols].sum())
    by_customer = by_customer[by_customer["interactions_90d"] > 0].astype(int)
    names = dict(zip(customers["customer_id"][::-1], customers["name"][::-1],  # the first wins
                     strict=True))
    by_customer = by_customer.sort_values(cols[::-1], ascending=False).head(TOP_N).reset_index()
    by_customer["customer_id"] = by_customer["customer_id"].astype(object)
    by_customer.insert(1, "name", [names.get(c, "") for c in by_customer["customer_id"]])
    return by_owner, by_customer


def _team(opps: pd.DataFrame, inter: pd.DataFrame, now: pd.Timestamp) -> pd.DataFrame:
    is_open, is_won = opps["kind"] == "open", opps["kind"] == "won"
    table = pd.DataFrame({
        "open_deals": opps[is_open].groupby("owner").size(),
        "pipeline": opps[is_open].groupby("owner")["amount_n"].sum(),
        "weighted": opps[is_open].groupby("owner")["weighted"].sum(),
        "won_deals": opps[is_won].groupby("owner").size(),
        "won_amount": opps[is_won].groupby("owner")["amount_n"].sum(),
        "interactions_30d": inter[(inter["date"] > now - pd.Timedelta(days=30))
                                  & (inter["date"] <= now)].groupby("owner", observed=True)
        .size(),
    }).astype(float).fillna(0)
    table = table[table.index != ""]
    for column in ("open_deals", "won_deals", "interactions_30d"):
        table[column] = table[column].astype(int)
    return (table.sort_values("weighted", ascending=False).rename_axis("owner")
            .reset_index())


def _plain(value: Any) -> Any:
    """JSON-able: numpy scalars to Python, NaN/NaT to None, timestamps to ISO dates."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if value is None or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        return value.date().isoformat()
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating | float):
        return None if np.isnan(value) else float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if value is pd.NA:
        return None
    return value
