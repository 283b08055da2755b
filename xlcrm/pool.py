"""The lead pool (公海): customers their owner no longer follows go back to a shared pool, and
any rep may claim them from it, within limits.

The rules live in Settings (see docs/pool.md): the Pool table gives, per customer Tier (a row
without a Tier for the rest), the days without a follow-up (an interaction), the days without
a won deal, and how many days ahead the owner is warned; Options switch the pool on
(`pool_enabled`, off by default: recycling clears owners, so a team opts in), exempt customers
with an open deal or a past win, say what happens to a recycled customer's open deals, and set
the claim limits (a day, a cap on customers owned, the former owner's cooldown, the protection
after a claim). A customer whose Locked cell says yes, or tagged Locked / 锁定, never goes.

`recycle` runs inside `sync` with the run's date: a customer past its limit loses its owner,
and its In Pool Since and Pool Reason cells are filled; the engine logs it as job ``pool``.
A customer in the pool that someone gives an owner by hand leaves the pool (its marker is
cleared). `claim` gives pool customers to a person, or says why not. Both are pure: they
return cells; the jobs (`xlcrm.jobs`) apply, log and write them through the session.

The clock of a customer starts at the later of its Created date (the day xlcrm first saw it,
when Created is blank) and the day its owner last changed (by hand or by a claim): a customer
handed to someone today is not recycled tomorrow for the months before.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from . import normalize as nz
from .history import History, parse_stamp
from .messages import t
from .promote import last_interactions
from .reader import ROW, WorkbookData
from .schema import normalize_value
from .settings import Person, parse_bool, split_choices

LOCK_TAGS = {"locked", "lock", "锁定"}


@dataclass
class Due:
    """An owned customer and the day it goes back to the pool."""

    customer_id: str
    name: str
    owner: str
    row: int
    due: dt.date
    reason: str  # "follow_up" or "win"
    days: int  # the rule's limit


@dataclass
class Recycling:
    """What the pool does on one run."""

    cells: list[tuple[int, int, Any]] = field(default_factory=list)  # Customers
    opportunity_cells: list[tuple[int, int, Any]] = field(default_factory=list)
    recycled: list[Due] = field(default_factory=list)
    warned: list[Due] = field(default_factory=list)  # due within the warning days
    missing: list[str] = field(default_factory=list)  # pool columns the sheet lacks


@dataclass
class Moves:
    """From the change log: who last took each customer when, and who released it when."""

    owner_since: dict[str, dt.date] = field(default_factory=dict)  # record id -> day
    claimed: dict[str, dt.date] = field(default_factory=dict)  # record id -> last claim day
    released_by: dict[str, str] = field(default_factory=dict)  # record id -> former owner
    claims: list[tuple[str, dt.date]] = field(default_factory=list)  # (person, day)
    first_seen: dict[str, dt.date] = field(default_factory=dict)

    @classmethod
    def of(cls, history: History) -> Moves:
        moves = cls()
        for rid, at, job, old, new in history.owner_moves():
            day = parse_stamp(at).astimezone().date()
            key = nz.record_id(rid)
            moves.owner_since[key] = day
            if job == "claim" and new:
                moves.claimed[key] = day
                moves.claims.append((normalize_value(new), day))
            elif job == "pool" and old:
                moves.released_by[key] = str(old)
        moves.first_seen = {nz.record_id(rid): parse_stamp(at).astimezone().date()
                            for rid, at in history.first_seen("customers").items()}
        return moves


def recycle(data: WorkbookData, moves: Moves, today: dt.date) -> Recycling:
    """The customers that go back to the pool today, those whose owner is warned, and the
    markers of customers given an owner by hand (see the module docstring)."""
    result = Recycling()
    settings, lang = data.settings, data.lang
    sheet = data.sheets["customers"]
    columns = sheet.columns
    frame = sheet.frame
    marked = "pooled_at" in columns
    if marked:  # someone gave a pool customer an owner: it has left the pool
        for _, record in frame[frame["owner"].map(lambda v: not nz.is_blank(v))
                               & frame["pooled_at"].map(lambda v: not nz.is_blank(v))].iterrows():
            result.cells.append((int(record[ROW]), columns["pooled_at"], None))
            if "pool_reason" in columns:
                result.cells.append((int(record[ROW]), columns["pool_reason"], None))
    if not settings.options.pool_enabled:
        return result
    result.missing = [key for key in ("pooled_at", "pool_reason") if key not in columns]
    if result.missing:
        return result  # reported by the job: the columns must exist before owners go
    for item in due_customers(data, moves, today):
        if item.due > today:
            result.warned.append(item)
            continue
        result.recycled.append(item)
        reason = t(f"pool_reason_{item.reason}", lang, days=item.days)
        result.cells += [(item.row, columns["owner"], None),
                         (item.row, columns["pooled_at"], dt.datetime.combine(today, dt.time())),
                         (item.row, columns["pool_reason"], reason)]
    if settings.options.pool_open_deals == "release" and result.recycled:
        result.opportunity_cells = _release_deals(data, {d.customer_id for d in result.recycled})
    return result


def due_customers(data: WorkbookData, moves: Moves, today: dt.date) -> list[Due]:
    """Owned customers that are due today or within their warning days, soonest first."""
    settings = data.settings
    options = settings.options
    frame = data.sheets["customers"].frame
    parse = nz.date_parser(settings.day_first)
    touched = last_interactions(data)
    open_deal, won_deal = _deals(data)
    out = []
    for record in frame.to_dict("records"):
        owner = record.get("owner")
        rid = nz.record_id(record.get("customer_id"))
        if nz.is_blank(owner) or not rid or is_locked(record):
            continue
        rule = settings.pool_rule(record.get("tier"))
        if rule is None or (rule.follow_up_days is None and rule.win_days is None):
            continue
        won_before = (won_deal.get(rid) is not None
                      or (nz.parse_number(record.get("won_deals")) or 0) > 0)
        if options.pool_exempt_open_deals and rid in open_deal:
            continue
        if options.pool_exempt_won and won_before:
            continue
        claimed = moves.claimed.get(rid)
        if claimed is not None and (today - claimed).days < options.pool_protect_days:
            continue
        created = parse(record.get("created_at")) or moves.first_seen.get(rid)
        starts = [d for d in (created, moves.owner_since.get(rid)) if d is not None]
        if not starts:
            continue
        start = max(starts)
        dues = []
        if rule.follow_up_days is not None:
            last = max(start, touched.get(rid, start))
            dues.append((last + dt.timedelta(days=rule.follow_up_days), "follow_up",
                         rule.follow_up_days))
        if rule.win_days is not None:
            last = max(start, won_deal.get(rid) or parse(record.get("last_purchase")) or start)
            dues.append((last + dt.timedelta(days=rule.win_days), "win", rule.win_days))
        due, reason, days = min(dues)
        if (due - today).days <= rule.warn_days:
            out.append(Due(nz.text(record.get("customer_id")), nz.text(record.get("name")),
                           nz.text(owner), int(record[ROW]), due, reason, days))
    return sorted(out, key=lambda d: (d.due, d.customer_id))


def is_locked(record: dict[str, Any]) -> bool:
    value = record.get("locked")
    if not nz.is_blank(value):
        try:
            return parse_bool(value if not isinstance(value, float) else int(value), False)
        except ValueError:
            return True  # any other word typed in Locked locks
    tags = record.get("tags")
    return not nz.is_blank(tags) and any(
        normalize_value(t) in LOCK_TAGS for t in split_choices(nz.text(tags)))


def _deals(data: WorkbookData) -> tuple[set[str], dict[str, dt.date | None]]:
    """Customers with an open deal; customers with a won deal -> its latest close date."""
    settings = data.settings
    opps = data.sheets["opportunities"].frame
    parse = nz.date_parser(settings.day_first)
    open_deal: set[str] = set()
    won: dict[str, dt.date | None] = {}
    for cid, stage, closed in zip(nz.map_unique(opps["customer_id"], nz.record_id, ""),
                                  opps["stage"], opps["closed_at"], strict=True):
        if not cid:
            continue
        kind = getattr(settings.stage(stage), "kind", "open")
        if kind == "open":
            open_deal.add(cid)
        elif kind == "won":
            day = parse(closed)
            earlier = won.get(cid)
            won[cid] = max(d for d in (day, earlier) if d is not None) if (
                day or earlier) else None
    return open_deal, won


def _release_deals(data: WorkbookData, customers: set[str]) -> list[tuple[int, int, Any]]:
    sheet = data.sheets["opportunities"]
    cells = []
    wanted = {nz.record_id(c) for c in customers}
    for record in sheet.frame.to_dict("records"):
        stage = data.settings.stage(record.get("stage"))
        if (nz.record_id(record.get("customer_id")) in wanted
                and (stage is None or stage.kind == "open")
                and not nz.is_blank(record.get("owner"))):
            cells.append((int(record[ROW]), sheet.columns["owner"], None))
    return cells


# ---------------------------------------------------------------------------------------------
# Claims

@dataclass
class Claim:
    person: str
    cells: list[tuple[int, int, Any]] = field(default_factory=list)
    claimed: list[str] = field(default_factory=list)
    refused: list[tuple[str, str, str]] = field(default_factory=list)  # (id, reason, message)


def claim(data: WorkbookData, moves: Moves, customer_ids: list[str], person: Person,
          today: dt.date) -> Claim:
    """Give the customers in the pool among `customer_ids` to `person`, in the order given,
    within the Settings' limits; say for each other one why not."""
    options, lang = data.settings.options, data.lang
    sheet = data.sheets["customers"]
    frame, columns = sheet.frame, sheet.columns
    result = Claim(person.name)
    who = normalize_value(person.name)
    by_id = {nz.record_id(r.get("customer_id")): r for r in frame.to_dict("records")}
    owned = sum(1 for v in frame["owner"] if normalize_value(v) == who)
    today_claims = sum(1 for name, day in moves.claims if name == who and day == today)
    parse = nz.date_parser(data.settings.day_first)
    for customer_id in customer_ids:
        rid = nz.record_id(customer_id)
        record = by_id.get(rid)
        why: tuple[str, dict[str, Any]] | None = None
        released = parse(record.get("pooled_at")) if record is not None else None
        if record is None:
            why = ("unknown", {})
        elif not nz.is_blank(record.get("owner")):
            why = ("owned", {"owner": nz.text(record.get("owner"))})
        elif is_locked(record):
            why = ("locked", {})
        elif (normalize_value(moves.released_by.get(rid)) == who and released is not None
              and (today - released).days < options.pool_cooldown_days):
            until = released + dt.timedelta(days=options.pool_cooldown_days)
            why = ("cooldown", {"since": released.isoformat(), "until": until.isoformat()})
        elif options.pool_claims_per_day and today_claims >= options.pool_claims_per_day:
            why = ("daily", {"limit": options.pool_claims_per_day})
        elif options.pool_max_owned and owned >= options.pool_max_owned:
            why = ("cap", {"limit": options.pool_max_owned})
        if why is not None:
            result.refused.append((customer_id, why[0], t(
                f"claim_{why[0]}", lang, id=customer_id, person=person.name, **why[1])))
            continue
        assert record is not None
        row = int(record[ROW])
        result.cells.append((row, columns["owner"], person.name))
        for key in ("pooled_at", "pool_reason"):
            if key in columns and not nz.is_blank(record.get(key)):
                result.cells.append((row, columns[key], None))
        result.claimed.append(nz.text(record.get("customer_id")))
        record["owner"] = person.name  # a second mention of the same ID is now owned
        owned += 1
        today_claims += 1
    return result


# ---------------------------------------------------------------------------------------------
# Figures for the Dashboard

@dataclass
class PoolFigures:
    in_pool: int
    recycled_week: int
    claimed_week: int
    due_by_owner: list[tuple[str, int]]  # owner, customers due within their warning days


def figures(data: WorkbookData, moves: Moves, today: dt.date,
            due: list[Due] | None = None) -> PoolFigures:
    """Pool size, recycled and claimed in the last 7 days, and per owner the customers that
    are about to go back to the pool (`due`: those a sync's `recycle` just warned, so they are
    not looked for twice)."""
    frame = data.sheets["customers"].frame
    parse = nz.date_parser(data.settings.day_first)
    week = today - dt.timedelta(days=6)
    pooled = [parse(v) for v in frame["pooled_at"]] if "pooled_at" in frame else []
    in_pool = int(frame["owner"].map(nz.is_blank).sum()) if len(frame) else 0
    if due is None:
        due = due_customers(data, moves, today) if data.settings.options.pool_enabled else []
    by_owner = Counter(d.owner for d in due)
    return PoolFigures(
        in_pool=in_pool,
        recycled_week=sum(1 for d in pooled if d is not None and week <= d <= today),
        claimed_week=sum(1 for _, day in moves.claims if week <= day <= today),
        due_by_owner=sorted(by_owner.items(), key=lambda item: (-item[1], item[0])))
