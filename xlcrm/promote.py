"""Won deals into the customer sheet: link or create the customer, then recompute roll-ups,
lifecycle, service owner and tier for every customer.

Pure: takes the read workbook, returns what to change. A won deal counts as promoted once a
"Deal won" interaction (outcome `WON_OUTCOME`, either language) points at it; roll-ups are
recomputed from all won deals every run and only values that differ are written, so a
second run changes nothing.

Matching a won deal without CustomerID uses exact keys (folded company name, contact e-mail,
contact phone); the fuzzy matcher of the duplicates issue replaces it when it lands.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from openpyxl.utils import get_column_letter

from . import normalize as nz
from . import progress, schema
from .ids import id_minter
from .issues import Code, Issue, make_message
from .reader import ROW, WorkbookData
from .schema import normalize_value
from .settings import split_choices

WON_OUTCOME = ("Deal won", "赢单")
DEAL_WON_SUMMARY = ("Deal won: {title}", "赢单：{title}")
TIER_LOCK_TAGS = frozenset({"tier-locked", "锁定等级"})
LIFECYCLE_DEFAULTS = schema.LISTS["lifecycle"]  # en and zh defaults, in the order below
PROSPECT, ACTIVE, REPEAT, DORMANT, CHURNED = range(5)


@dataclass
class Promotion:
    """What promotion changes: records to add, cells to set, and what it reports."""

    promoted: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    new_customers: list[dict[str, Any]] = field(default_factory=list)
    new_interactions: list[dict[str, Any]] = field(default_factory=list)
    cells: dict[str, list[tuple[int, int, Any]]] = field(default_factory=dict)  # sheet -> cells
    issues: list[Issue] = field(default_factory=list)

    @property
    def changes(self) -> bool:
        return bool(self.new_customers or self.new_interactions
                    or any(self.cells.values()))

    def to_json(self) -> dict[str, Any]:
        return {"version": 1, "promoted": self.promoted, "skipped": self.skipped}


def promote_won_deals(data: WorkbookData, today: dt.date | None = None) -> Promotion:
    """Promote won deals and recompute customer roll-ups (see the module docstring)."""
    progress.step("promote")
    today = today or dt.date.today()
    result = Promotion()
    settings, lang = data.settings, data.lang
    customers = data.sheets["customers"].frame
    opps = data.sheets["opportunities"].frame
    is_won, done = _won_and_done(data)
    won = opps[is_won]
    promoted_before = nz.map_unique(won["opportunity_id"], nz.record_id, "").isin(done)
    links: dict[int, str] = {}  # opportunity frame index -> customer id, for roll-ups
    for i, customer in won.loc[promoted_before, "customer_id"].items():  # the usual case
        if not nz.is_blank(customer):
            links[i] = nz.text(customer)
    to_promote = won[~promoted_before]
    index = _CustomerIndex(customers if len(to_promote) else customers.iloc[:0],
                           settings.options.phone_region)
    parse_date = nz.date_parser(settings.day_first)
    new_customer_id = id_minter(data, "customers")
    new_interaction_id = id_minter(data, "interactions")
    opp_cells: list[tuple[int, int, Any]] = []
    opp_columns = data.sheets["opportunities"].columns

    for i, opp in to_promote.iterrows():  # only deals not promoted yet
        oid = nz.text(opp["opportunity_id"])
        customer_id, created, matched_by = None, False, None
        if not nz.is_blank(opp["customer_id"]):
            customer_id = index.get(opp["customer_id"])
            if customer_id is None:
                result.skipped.append({"opportunity_id": oid, "reason": "unknown-customer",
                                       "candidates": []})
                continue
            matched_by = "customer_id"
        elif nz.is_blank(opp["company"]):
            result.skipped.append({"opportunity_id": oid, "reason": "no-company",
                                   "candidates": []})
            continue  # validation reports it as missing-required
        else:
            candidates, matched_by = index.match(opp)
            if len(candidates) > 1:
                result.skipped.append({"opportunity_id": oid, "reason": "ambiguous-customer",
                                       "candidates": candidates})
                result.issues.append(_ambiguous(data, opp, candidates))
                continue
            if candidates:
                customer_id = candidates[0]
            else:
                customer_id, created, matched_by = next(new_customer_id), True, None
                record = _new_customer(opp, customer_id, today)
                kinds = settings.choices("customer_type")
                record["kind"] = kinds[0] if kinds else None
                result.new_customers.append(record)
                index.add(record)
        closed = parse_date(opp["closed_at"]) or parse_date(opp["stage_changed_at"]) or today
        row = int(opp[ROW])
        if nz.is_blank(opp["customer_id"]):
            opp_cells.append((row, opp_columns["customer_id"], customer_id))
        if nz.is_blank(opp["closed_at"]) and "closed_at" in opp_columns:
            opp_cells.append((row, opp_columns["closed_at"], closed))
        result.new_interactions.append({
            "interaction_id": next(new_interaction_id), "date": closed,
            "customer_id": customer_id, "opportunity_id": oid,
            "kind": _other_kind(settings.choices("interaction_type")),
            "summary": schema.label(DEAL_WON_SUMMARY, lang).format(title=nz.text(opp["title"])),
            "owner": None if nz.is_blank(opp["owner"]) else opp["owner"],
            "outcome": schema.label(WON_OUTCOME, lang),
        })
        result.promoted.append({"opportunity_id": oid, "customer_id": customer_id,
                                "created": created, "matched_by": matched_by})
        links[i] = customer_id
        opps.at[i, "closed_at"] = closed
    if opp_cells:
        result.cells[data.sheets["opportunities"].name] = opp_cells
    _roll_up(data, result, opps, links, today)
    return result


def _won_and_done(data: WorkbookData) -> tuple[pd.Series, set[str]]:
    """Which opportunities are at a won stage, and the IDs of those promoted already (their
    "Deal won" interaction exists)."""
    opps = data.sheets["opportunities"].frame
    inter = data.sheets["interactions"].frame
    won_names = {normalize_value(s.name) for s in data.settings.stages if s.kind == "won"}
    is_won = nz.map_unique(opps["stage"], lambda v: normalize_value(v) in won_names,
                           False).astype(bool)
    won_outcomes = {normalize_value(w) for w in WON_OUTCOME}
    outcome_won = nz.map_unique(inter["outcome"], lambda v: normalize_value(v) in won_outcomes,
                                False).astype(bool)
    done = set(nz.map_unique(inter.loc[outcome_won, "opportunity_id"], nz.record_id, ""))
    return is_won, done


def ambiguous_customers(data: WorkbookData) -> list[Issue]:
    """`ambiguous-customer` warnings: won deals, not promoted yet, with no CustomerID, whose
    company, e-mail or phone matches more than one customer. What `promote` would skip, found
    without promoting (so that validate, the ribbon and the watcher report it too)."""
    opps = data.sheets["opportunities"].frame
    is_won, done = _won_and_done(data)
    pending = opps[is_won & nz.map_unique(opps["customer_id"], nz.is_blank, True).astype(bool)
                   & ~nz.map_unique(opps["company"], nz.is_blank, True).astype(bool)
                   & ~nz.map_unique(opps["opportunity_id"], nz.record_id, "").isin(done)]
    if pending.empty:
        return []
    index = _CustomerIndex(data.sheets["customers"].frame, data.settings.options.phone_region)
    issues = []
    for _, opp in pending.iterrows():
        candidates, _ = index.match(opp)
        if len(candidates) > 1:
            issues.append(_ambiguous(data, opp, candidates))
    return issues


class _CustomerIndex:
    """Customers by ID and by the exact keys a won deal can be matched on."""

    def __init__(self, frame: pd.DataFrame, region: str) -> None:
        self.region = region
        self.ids: dict[str, str] = {}
        self.keys: dict[tuple[str, str], set[str]] = {}
        for record in frame.to_dict("records"):
            self.add(record)

    def add(self, record: dict[str, Any]) -> None:
        rid = nz.text(record.get("customer_id"))
        if not rid:
            return
        self.ids[nz.record_id(rid)] = rid
        for kind, key in self._keys(record.get("name"), record.get("email"), record.get("phone")):
            self.keys.setdefault((kind, key), set()).add(rid)

    def _keys(self, name: Any, email: Any, phone: Any) -> list[tuple[str, str]]:
        out = []
        if not nz.is_blank(name) and nz.company_key(name):
            out.append(("name", nz.company_key(name)))
        if not nz.is_blank(email) and (key := nz.email_key(nz.text(email))):
            out.append(("email", key))
        if not nz.is_blank(phone) and (key := nz.phone_e164(nz.text(phone), self.region)):
            out.append(("phone", key))
        return out

    def get(self, value: Any) -> str | None:
        return self.ids.get(nz.record_id(value))

    def match(self, opp: pd.Series) -> tuple[list[str], str | None]:
        found: dict[str, str] = {}
        for kind, key in self._keys(opp["company"], opp["contact_email"], opp["contact_phone"]):
            for rid in sorted(self.keys.get((kind, key), ())):
                found.setdefault(rid, kind)
        candidates = sorted(found)
        return candidates, (found[candidates[0]] if len(candidates) == 1 else None)


def _new_customer(opp: pd.Series, customer_id: str, today: dt.date) -> dict[str, Any]:
    def value(key: str) -> Any:
        return None if nz.is_blank(opp[key]) else opp[key]

    return {"customer_id": customer_id, "name": value("company"),
            "contact_name": value("contact_name"), "email": value("contact_email"),
            "phone": value("contact_phone"), "owner": value("owner"), "source": value("source"),
            "created_at": today}


def _other_kind(kinds: list[str]) -> str | None:
    for word in ("Other", "其他"):
        if word in kinds:
            return word
    return kinds[-1] if kinds else None


def _ambiguous(data: WorkbookData, opp: pd.Series, candidates: list[str]) -> Issue:
    sheet = data.sheets["opportunities"]
    row = int(opp[ROW])
    cell = f"{get_column_letter(sheet.columns['customer_id'])}{row}"
    return Issue(code=Code.AMBIGUOUS_CUSTOMER, sheet=sheet.name, row=row, cell=cell,
                 field="customer_id", record_id=nz.text(opp["opportunity_id"]),
                 value=None if nz.is_blank(opp["company"]) else opp["company"],
                 message=make_message(Code.AMBIGUOUS_CUSTOMER, data.lang,
                                      value=opp["company"], candidates=", ".join(candidates)),
                 severity="warning")


# ---------------------------------------------------------------------------------------------
# Roll-ups, lifecycle, service owner, tier: recomputed for every customer, every run

def _roll_up(data: WorkbookData, result: Promotion, opps: pd.DataFrame,
             links: dict[int, str], today: dt.date) -> None:
    settings, lang = data.settings, data.lang
    rates = settings.rates()  # the default currency is 1
    parse_date = nz.date_parser(settings.day_first)
    wins: dict[str, list[tuple[dt.date, float | None]]] = {}
    linked = opps.loc[list(links), ["closed_at", "stage_changed_at", "amount", "currency",
                                    "opportunity_id"]]
    for customer_id, opp in zip(links.values(), linked.to_dict("records"), strict=True):
        closed = parse_date(opp["closed_at"]) or parse_date(opp["stage_changed_at"])
        amount = nz.parse_number(opp["amount"])
        code = (settings.options.default_currency if nz.is_blank(opp["currency"])
                else nz.text(opp["currency"])).strip().upper()
        if code not in rates:
            amount = None  # never summed blindly; listed below
            result.skipped.append({"opportunity_id": nz.text(opp["opportunity_id"]),
                                   "reason": "other-currency", "candidates": []})
        elif amount is not None:
            amount *= rates[code]  # into the default currency, at the Settings' rate
        wins.setdefault(nz.record_id(customer_id), []).append((closed or today, amount))

    last_touch = last_interactions(data)
    lifecycle = _lifecycle_labels(settings.choices("lifecycle"), lang)
    churned = {normalize_value(w) for w in (lifecycle[CHURNED], *(
        d[CHURNED] for d in (LIFECYCLE_DEFAULTS[2], LIFECYCLE_DEFAULTS[3])))}
    tiers = settings.tiers()
    service = [p.name for p in settings.people if p.role == "service" and p.active]
    rows = data.sheets["customers"]
    customers = rows.frame
    load = Counter(normalize_value(v) for v in customers["service_owner"] if not nz.is_blank(v))
    horizon = today - dt.timedelta(days=settings.options.dormant_days)

    records = [*customers.to_dict("records"), *result.new_customers]
    new_ids = {c["customer_id"] for c in result.new_customers}
    cells: list[tuple[int, int, Any]] = []
    for record in records:
        rid = nz.record_id(record.get("customer_id"))
        deals = wins.get(rid, [])
        values: dict[str, Any] = {"won_deals": len(deals)}
        amounts = [a for _, a in deals if a is not None]
        values["lifetime_value"] = round(sum(amounts), 2) if deals else None
        dates = sorted(d for d, _ in deals)
        values["first_purchase"] = dates[0] if dates else None
        values["last_purchase"] = dates[-1] if dates else None
        activity = [d for d in (values["last_purchase"], nz.parse_date(record.get("created_at")),
                                last_touch.get(rid)) if d is not None]
        if normalize_value(record.get("lifecycle")) in churned and record.get("lifecycle"):
            values["lifecycle"] = record["lifecycle"]  # set by hand, never overwritten
        elif activity and max(activity) < horizon:
            values["lifecycle"] = lifecycle[DORMANT]
        else:
            values["lifecycle"] = lifecycle[min(len(deals), REPEAT)]
        tags = {normalize_value(t) for t in settings_split(record.get("tags"))}
        if not tags & TIER_LOCK_TAGS and tiers:
            value = values["lifetime_value"] or 0
            values["tier"] = next((name for name, minimum in tiers if value >= minimum),
                                  tiers[-1][0])
        if deals and nz.is_blank(record.get("service_owner")) and service:
            owner = _service_owner(record | values, settings.service_rules, service, load)
            values["service_owner"] = owner
            load[normalize_value(owner)] += 1
        if record.get("customer_id") in new_ids:
            record.update(values)
            continue
        for key, value in values.items():
            if key in rows.columns and nz.text(record.get(key)) != nz.text(value):
                cells.append((int(record[ROW]), rows.columns[key], value))
    if cells:
        result.cells[rows.name] = cells


def last_interactions(data: WorkbookData) -> dict[str, dt.date]:
    """The day of each customer's latest interaction, by record ID (roll-ups, the lead pool)."""
    inter = data.sheets["interactions"].frame
    if inter.empty:
        return {}
    dates = nz.date_column(inter["date"], data.settings.day_first)
    last = dates.groupby(nz.map_unique(inter["customer_id"], nz.record_id, "")).max()
    return {rid: stamp.date() for rid, stamp in last.items() if rid and pd.notna(stamp)}


def settings_split(value: Any) -> list[str]:
    return split_choices(nz.text(value)) if not nz.is_blank(value) else []


def _lifecycle_labels(choices: list[str], lang: str) -> list[str]:
    if len(choices) >= 5:
        return choices[:5]
    return list(LIFECYCLE_DEFAULTS[2 if lang == "en" else 3])


def _service_owner(record: dict[str, Any], rules: list[Any], service: list[str],
                   load: Counter[str]) -> str:
    """The first matching rule's owner, else the active service person with fewest customers."""
    for rule in rules:
        if normalize_value(record.get(rule.field)) == normalize_value(rule.value):
            return str(rule.owner)
    return min(service, key=lambda name: (load[normalize_value(name)], service.index(name)))
