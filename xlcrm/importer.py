"""`xlcrm import`: a team's existing sheet into the workbook, as a preview first, then an
upsert that never overwrites a value with a blank.

`plan_import` is pure (a workbook as read, a source table, its column mapping): it returns an
`ImportPlan` that says everything the import would do; `queue_import` queues it on a session
and returns what undo needs. The decisions:

- **Splitting.** Each source row yields a customer when it names one (a CustomerID, or a
  company / customer name, or a contact's e-mail or phone), an opportunity when it names a
  deal (a title, a stage or an amount), and an interaction when it has a contact date with a
  note. The deal and the interaction are linked to the row's customer.
- **Matching customers**: by CustomerID when the source has one; else through the duplicate
  matcher (`xlcrm.dedupe.find_duplicate_customers`: tax ID, e-mail, phone, company domain,
  name) run over the workbook's customers and the source's together, which also merges the
  rows of the source that are one customer; else by the same folded name, if that name is
  held by one customer only. A source customer that matches several workbook customers is
  linked to the strongest match and listed as ambiguous.
- **Matching deals**: by OpportunityID; else the same customer with the same folded title
  and, where both have one, the same amount. Interactions: the same customer, date and
  summary. Anything else is new and gets the next free ID (the Settings prefix).
- **Never clobber.** A blank in the source never changes a cell. A value where the workbook's
  cell is blank fills it. Two different values are a **conflict**, listed and left as the
  workbook has it, unless `prefer="source"` (then the source's value is written) or
  `prefer="workbook"` (then it is not listed either). Values are compared as the engine reads
  them (numbers as numbers, dates as dates, text folded).
- **Values** go through the engine's own parsers: Chinese and Western numbers and dates
  (`1.2万`, `¥12,000`, `2026年11月3日`, `03/11/2026` day- or month-first by Settings →
  `date_order`, or `day_first`); a value that does not parse is kept as typed (validation then
  flags it) and listed. Stages are mapped to Settings stages (by name in either language, and
  from each CRM's default pipeline names, HubSpot's internal IDs included); an unknown stage is
  kept as typed and listed, never guessed. Owners are matched to People by name or e-mail; a
  new name is kept and listed.
- **Rejected rows**: a row that names neither a customer nor a deal, or a deal whose
  customer cannot be told: listed with the source row and the reason.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Literal

import pandas as pd

from . import normalize as nz
from . import schema
from .background import Background
from .dedupe import PERSON_WORDS, find_duplicate_customers, preload
from .ids import id_minter
from .importmap import EXTERNAL_ID, PROSPECT_KEY, Column
from .reader import ROW, WorkbookData
from .sources import SourceTable

Prefer = Literal["none", "source", "workbook"]
KINDS = ("customers", "opportunities", "interactions")
DEAL_CONCEPTS = {"opportunities.title", "opportunities.stage", "opportunities.amount"}
TYPES = {f"{s.key}.{f.key}": f.type for s in schema.DATA_SHEETS for f in s.fields}
PLAIN_TEXT = frozenset(concept for concept, kind in TYPES.items() if kind == "text" and
                       concept not in ("opportunities.stage", "customers.kind") and
                       not concept.endswith(".owner") and not concept.endswith("_id"))
PARALLEL_TITLES = 50_000  # distinct deal titles from which a second process folds them


@dataclass
class Change:
    sheet: str  # key
    record_id: str
    field: str
    old: Any
    new: Any
    row: int  # the workbook's row
    source_row: int


@dataclass
class Conflict:
    sheet: str
    record_id: str
    field: str
    workbook: Any
    source: Any
    source_row: int


@dataclass
class Rejected:
    source_row: int
    reason: str  # a key of messages.TEXTS ("import_reject_<reason>")


@dataclass
class NewRecord:
    sheet: str
    record_id: str
    values: dict[str, Any]
    source_row: int


@dataclass
class ImportPlan:
    source: str
    columns: list[Column]
    new: list[NewRecord] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    matched: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    unknown_stages: dict[str, int] = field(default_factory=dict)
    new_people: dict[str, int] = field(default_factory=dict)
    unparsed: list[tuple[int, str, Any]] = field(default_factory=list)  # row, field, value
    ambiguous: list[tuple[int, list[str]]] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)
    rows: int = 0
    touched: set[tuple[str, str, str]] = field(default_factory=set)  # cells changed or in
    #                                                                   conflict
    def counts(self) -> dict[str, dict[str, int]]:
        new = {k: sum(1 for r in self.new if r.sheet == k) for k in KINDS}
        changed = {k: len({c.record_id for c in self.changes if c.sheet == k}) for k in KINDS}
        return {"new": new, "updated": changed, "matched": dict(self.matched)}

    def empty(self) -> bool:
        return not self.new and not self.changes

    def to_json(self) -> dict[str, Any]:
        def plain(value: Any) -> Any:
            return value.isoformat() if isinstance(value, dt.date) else value

        return {
            "source": self.source, "rows": self.rows, "counts": self.counts(),
            "mapping": [{"header": c.header, "field": c.concept, "confidence": c.confidence,
                         "how": c.how} for c in self.columns],
            "new": [{"sheet": r.sheet, "record_id": r.record_id, "source_row": r.source_row,
                     "values": {k: plain(v) for k, v in r.values.items()}} for r in self.new],
            "changes": [{"sheet": c.sheet, "record_id": c.record_id, "field": c.field,
                         "old": plain(c.old), "new": plain(c.new), "row": c.row,
                         "source_row": c.source_row} for c in self.changes],
            "conflicts": [{"sheet": c.sheet, "record_id": c.record_id, "field": c.field,
                           "workbook": plain(c.workbook), "source": plain(c.source),
                           "source_row": c.source_row} for c in self.conflicts],
            "rejected": [{"source_row": r.source_row, "reason": r.reason}
                         for r in self.rejected],
            "unknown_stages": self.unknown_stages, "new_people": self.new_people,
            "unparsed": [{"source_row": r, "field": f, "value": plain(v)}
                         for r, f, v in self.unparsed],
            "ambiguous": [{"source_row": r, "candidates": c} for r, c in self.ambiguous],
            "skipped": self.skipped}


# ---------------------------------------------------------------------------------------------
# Values


def prepare(data: WorkbookData) -> None:
    """What a plan needs of the workbook alone, made ahead (while the source is read):
    pypinyin imported, the customers' names folded (`normalize` keeps them)."""
    preload()
    for name in data.sheets["customers"].frame["name"]:
        if type(name) is str:
            nz.company_key(name)


def stage_names(data: WorkbookData) -> dict[str, str]:
    """Folded stage names a source may use -> the Settings stage: our names in both
    languages, each CRM's default pipeline names (Settings → ExportStages), and the kinds."""
    stages = data.settings.stages
    out: dict[str, str] = {}
    by_default = {}
    for i, (en, zh, *_rest) in enumerate(schema.DEFAULT_STAGES):
        if i < len(stages):
            by_default[en] = by_default[zh] = stages[i].name
    for stage in stages:
        out[schema.normalize_value(stage.name)] = stage.name
    for name, ours in by_default.items():
        out.setdefault(schema.normalize_value(name), ours)
    for export in data.settings.export_stages:
        for target in ("hubspot", "salesforce", "zoho", "odoo"):
            value = getattr(export, target)
            if value and data.settings.stage(export.stage):
                out.setdefault(schema.normalize_value(value), export.stage)
    for en, names in schema.DEFAULT_EXPORT_STAGES.items():
        for value in names:
            if en in by_default:
                out.setdefault(schema.normalize_value(value), by_default[en])
    won = next((s.name for s in stages if s.kind == "won"), None)
    lost = next((s.name for s in stages if s.kind == "lost"), None)
    for word, kind_name in (("won", won), ("closed won", won), ("成交", won), ("已成交", won),
                            ("lost", lost), ("closed lost", lost), ("丢单", lost),
                            ("失败", lost)):
        if kind_name:
            out.setdefault(word, kind_name)
    return out


class Values:
    """The parsers a source's cells go through."""

    def __init__(self, data: WorkbookData, day_first: bool | None) -> None:
        self.day_first = (nz.dayfirst(data.settings.options.date_order, data.lang)
                          if day_first is None else day_first)
        self.parse_date = nz.date_parser(self.day_first)
        self.stages = stage_names(data)
        self.settings = data.settings
        self.kinds = customer_kinds(data)

    def value(self, concept: str, raw: Any) -> tuple[Any, bool]:
        """The value to write for `raw` under a concept, and whether it parsed (`_Splitter`
        asks once per distinct value of a column)."""
        kind = TYPES.get(concept, "text")
        if concept == "customers.kind":  # another CRM's "Type" (Prospect, opportunity,
            found = self.kinds.get(schema.normalize_value(raw))  # invoice) is not ours
            return (found, True) if found is not None else (_BLANK, False)
        if kind == "date":
            day = self.parse_date(raw)
            return (day, True) if day is not None else (raw, False)
        if kind in ("money", "number", "rating"):
            number = nz.parse_number(raw)
            if number is None:
                return raw, False
            return (int(number) if float(number).is_integer() else number), True
        if kind == "percent":
            fraction = nz.parse_fraction(raw)
            return (fraction, True) if fraction is not None else (raw, False)
        if isinstance(raw, float) and raw.is_integer():
            return str(int(raw)), True
        if isinstance(raw, dt.datetime):
            return raw, True
        text = nz.text(raw).strip()
        if concept in ID_CONCEPTS:
            return our_id(text), True
        return text, True


COMPANY_WORDS = frozenset({"company", "organization", "organisation", "business",
                           "corporate", "企业", "公司", "单位", "机构"})


def customer_kinds(data: WorkbookData) -> dict[str, str]:
    """Customer Type values as typed (folded) -> the workbook's choice: its own choices, and
    the words for a company or a person in either language, to its first choice of that
    kind. A value none of these know is no Customer Type (the import lists it)."""
    choices = data.settings.choices("customer_type")
    en, zh = schema.LISTS["customer_type"][2:]
    out: dict[str, str] = {}
    for words, defaults in ((COMPANY_WORDS, (en[0], zh[0])), (PERSON_WORDS, (en[1], zh[1]))):
        known = {schema.normalize_value(w) for w in (*words, *defaults)}
        mine = next((c for c in choices if schema.normalize_value(c) in known),
                    defaults[data.lang == "zh"])
        out.update(dict.fromkeys(known, mine))
    out.update({schema.normalize_value(c): c for c in choices})
    return out


ID_CONCEPTS = frozenset({"customers.customer_id", "opportunities.opportunity_id",
                         "interactions.interaction_id"})


def our_id(text: str) -> Any:
    """An ID as the workbook writes it: Odoo's external ID ``xlcrm.customer_C-000123`` is
    C-000123; the key our exports give a prospect's company (``prospect:initech``, a CRM
    needs an account for its deal) is no ID (`_BLANK`: the company is matched by name)."""
    found = EXTERNAL_ID.fullmatch(text)
    if found is not None:
        return found[2]
    if text.startswith(PROSPECT_KEY):
        return _BLANK
    return text


_NUMBERS = (int, float)


def _same(a: Any, b: Any, concept: str = "") -> bool:
    """Two cell values the engine reads alike: for a name, the same folded name (ACME LTD. is
    Acme Ltd); a phone, the same number however it is written; else as typed values."""
    if a == b and (type(a) is type(b) or type(a) in _NUMBERS and type(b) in _NUMBERS) or \
            nz.is_blank(a) and nz.is_blank(b):
        return True  # (the same value, typed alike: the common case of an import again)
    kind = TYPES.get(concept, "text")
    if concept == "customers.name" and not (nz.is_blank(a) or nz.is_blank(b)):
        return nz.company_key(a) == nz.company_key(b)
    if kind == "phone" and not (nz.is_blank(a) or nz.is_blank(b)):
        ka, kb = nz.phone_key(a), nz.phone_key(b)
        if ka and kb:
            return ka == kb
    if kind == "tax_id" and not (nz.is_blank(a) or nz.is_blank(b)):
        return nz.text(a).replace(" ", "").upper() == nz.text(b).replace(" ", "").upper()
    na, nb = nz.parse_number(a), nz.parse_number(b)
    if na is not None and nb is not None and not isinstance(a, dt.date | dt.datetime):
        return abs(na - nb) < 1e-9
    if isinstance(a, dt.date | dt.datetime) or isinstance(b, dt.date | dt.datetime):
        return nz.parse_date(a) == nz.parse_date(b)
    return schema.normalize_value(a) == schema.normalize_value(b)


# ---------------------------------------------------------------------------------------------
# Planning


def plan_import(data: WorkbookData, table: SourceTable, columns: list[Column],
                prefer: Prefer = "none", day_first: bool | None = None,
                key: str | None = None) -> ImportPlan:
    """See the module docstring. `key` (a Customers field: name, email, phone, tax_id, …)
    matches customers by that field alone, exactly (folded), instead of the matcher."""
    plan = ImportPlan(table.name, columns, skipped=dict(table.skipped), rows=len(table.rows))
    values = Values(data, day_first)
    rows = _known_or_named(_Splitter(plan, values, columns).split(table.rows,
                                                                  table.row_numbers), data, plan)
    # the deal titles are folded (for matching deals) by a second process meanwhile
    titles = list({v for v in data.sheets["opportunities"].frame["title"] if not nz.is_blank(v)}
                  | {r.deal["title"] for r in rows if r.deal.get("title") is not None})
    with Background(len(titles), nz.name_words_many, titles,
                    start_from=PARALLEL_TITLES) as folding:
        groups = (_match_by_key(data, rows, key) if key else
                  _match_customers(plan, data, rows))
        # (IDs the source brings for its new records are in use too)
        brought = {"customers": [v for r in rows if (v := r.customer.get("customer_id"))],
                   "opportunities": [v for r in rows if (v := r.deal.get("opportunity_id"))],
                   "interactions": [v for r in rows if (v := r.touch.get("interaction_id"))]}
        mint = {key: id_minter(data, key, brought[key]) for key in KINDS}
        _upsert_customers(plan, data, groups, rows, mint, prefer)
        folded = dict(zip(titles, folding.result(), strict=True))
    _upsert_children(plan, data, rows, mint, prefer, folded)
    return plan


@dataclass
class _Row:
    number: int
    customer: dict[str, Any]
    deal: dict[str, Any]
    touch: dict[str, Any]
    customer_id: str | None = None  # resolved: the workbook's or a new one
    owner_hint: str | None = None  # a deal's owner: the owner of its customer, if new


_SHEET_AT = {"customers": 0, "opportunities": 1, "interactions": 2}
_BLANK = object()


class _Splitter:
    """Splits source rows into their customer, deal and interaction values (see the module
    docstring). What each column means is decided once; each distinct value of a column is
    parsed once; a row is then a few dictionary look-ups per cell."""

    def __init__(self, plan: ImportPlan, values: Values, columns: list[Column]) -> None:
        concepts = {c.concept for c in columns if c.concept}
        self.has_deals = has_deals = bool(concepts & DEAL_CONCEPTS)
        self.has_interactions = has_interactions = "interactions.date" in concepts and (
            "interactions.summary" in concepts or (not has_deals and "notes" in concepts))
        key_target = ("opportunities.opportunity_id" if has_deals else
                      "interactions.interaction_id" if has_interactions and not (
                          concepts & {"customers.name", "customers.email", "customers.phone"})
                      else "customers.customer_id")
        summary_column = "interactions.summary" in concepts
        self.plan, self.values = plan, values
        self.first_at = self.last_at = None
        self.specs: list[tuple[int, str, int, str, dict[Any, Any]]] = []  # at, concept,
        #                                                   sheet, field, parsed values
        for at, column in enumerate(columns):
            if column.concept is None:
                continue
            concept = key_target if column.concept == "key" else column.concept
            if concept == "first_name":
                self.first_at = at
                continue
            if concept == "last_name":
                self.last_at = at
                continue
            if concept == "owner":  # the deal's owner (and a new customer's), or the customer's
                concept = "opportunities.owner" if has_deals else "customers.owner"
            elif concept == "notes" and has_interactions and not has_deals and \
                    not summary_column:
                concept = "interactions.summary"
            elif concept in ("created", "notes", "source"):
                target = "opportunities" if has_deals else "customers"
                concept = f"{target}.{'created_at' if concept == 'created' else concept}"
            sheet, _, name = concept.partition(".")
            self.specs.append((at, concept, _SHEET_AT[sheet], name, {}))
        self.owner_hint = has_deals and any(c.concept == "owner" for c in columns)

    def _parse(self, concept: str, name: str, cell: Any) -> tuple[Any, bool, str | None]:
        """(value, parsed, counter): the counter names the plan's list of new people or
        unknown stages the value counts in, each time it occurs."""
        if nz.is_blank(cell):
            return _BLANK, True, None
        if name == "owner":
            person = self.values.settings.person(cell)
            if person is not None:
                return person.name, True, None
            return nz.text(cell).strip(), True, "new_people"
        if concept == "opportunities.stage":
            found = self.values.stages.get(schema.normalize_value(cell))
            if found is not None:
                return found, True, None
            return nz.text(cell).strip(), True, "unknown_stages"
        parsed, ok = self.values.value(concept, cell)
        return parsed, ok, None

    def split(self, raw_rows: list[list[Any]], numbers: list[int]) -> list[_Row]:
        """The rows that name a customer or a deal (the rest are rejected), split."""
        if not raw_rows:
            return []
        plan = self.plan
        grid = list(zip(*raw_rows, strict=True))  # one tuple per source column
        sheets: list[list[tuple[str, list[Any]]]] = [[], [], []]
        unparsed: list[tuple[int, int, str, Any]] = []  # row, spec, field, value
        counted: list[list[tuple[int, int, Any, str]]] = []  # row, spec, value, counter
        for order, (at, concept, sheet, name, memo) in enumerate(self.specs):
            column = grid[at]
            try:
                distinct = set(column)
            except TypeError:  # a value no dict can hold (a list from a rich cell): its text
                column = tuple(map(_keyable, column))
                distinct = set(column)
            plain = concept in PLAIN_TEXT  # a source's text (trimmed already) as it is
            for cell in distinct:
                if cell not in memo:
                    memo[cell] = (_BLANK, True, None) if cell is None else (
                        (cell, True, None) if plain and type(cell) is str and cell and
                        cell == cell.strip() else
                        self._parse(concept, name, cell))
            parsed = list(map({c: memo[c][0] for c in distinct}.__getitem__, column))
            found = [memo[cell] for cell in column] if any(
                not memo[c][1] or memo[c][2] is not None for c in distinct) else None
            if found is not None:  # values to list (unparsed) or count (new people, stages)
                unparsed += [(i, order, concept, column[i]) for i, f in enumerate(found)
                             if not f[1]]
                counted.append([(i, order, f[0], f[2]) for i, f in enumerate(found)
                                if f[2] is not None])
            sheets[sheet].append((name, parsed))
        plan.unparsed += [(numbers[i], concept, value) for i, _, concept, value in
                          sorted(unparsed, key=lambda u: (u[0], u[1]))]
        # new people and unknown stages, counted in the order the rows name them
        entries = [c for each in counted for c in each]
        if sum(1 for each in counted if each) > 1:
            entries.sort(key=lambda c: (c[0], c[1]))
        for _, _, parsed, counter in entries:
            counts = getattr(plan, counter)
            counts[parsed] = counts.get(parsed, 0) + 1
        records = [self._records(fields, len(raw_rows)) for fields in sheets]
        first = grid[self.first_at] if self.first_at is not None else None
        last = grid[self.last_at] if self.last_at is not None else None
        out = []
        for i, (number, customer, deal, touch) in enumerate(zip(numbers, *records,
                                                                strict=True)):
            row = _Row(number, customer, deal, touch)
            if first is not None or last is not None:
                self._contact_name(row, first[i] if first else None, last[i] if last else None)
            if self._keep(row):
                out.append(row)
        return out

    @staticmethod
    def _records(fields: list[tuple[str, list[Any]]], count: int) -> list[dict[str, Any]]:
        """One dict per row of a sheet's parsed columns, blanks left out."""
        if not fields:
            return [{} for _ in range(count)]
        names = [name for name, _ in fields]
        return [{k: v for k, v in zip(names, values, strict=True) if v is not _BLANK}
                for values in zip(*(column for _, column in fields), strict=True)]

    @staticmethod
    def _contact_name(row: _Row, first: Any, last: Any) -> None:
        first = None if nz.is_blank(first) else first
        last = None if nz.is_blank(last) else last
        if first or last:
            parts = [nz.text(p).strip() for p in (first, last) if p]
            row.customer.setdefault("contact_name", "".join(reversed(parts)) if all(
                nz.has_chinese(p) for p in parts) else " ".join(parts))  # 伟 + 张 → 张伟

    def _keep(self, row: _Row) -> bool:
        """Finish a split row; False (and listed as rejected) when it names no customer, or
        a deal without one."""
        plan = self.plan
        if self.owner_hint and "owner" in row.deal:
            row.owner_hint = row.deal["owner"]
        if "customer_id" in row.deal:  # a deal's customer reference is the row's customer
            row.customer.setdefault("customer_id", row.deal.pop("customer_id"))
        if "customer_id" in row.touch:
            row.customer.setdefault("customer_id", row.touch.pop("customer_id"))
        customer = row.customer
        names_customer = bool(customer.get("customer_id") or customer.get("name") or
                              customer.get("email") or customer.get("phone") or
                              customer.get("tax_id"))
        if not self.has_deals:
            row.deal = {}
        if not self.has_interactions or not row.touch.get("date"):
            row.touch = {}
        if not names_customer and not row.deal:
            plan.rejected.append(Rejected(row.number, "nothing"))
            return False
        if row.deal and not names_customer:
            plan.rejected.append(Rejected(row.number, "no_customer"))
            return False
        return True


def _keyable(value: Any) -> Any:
    try:
        hash(value)
    except TypeError:
        return str(value)
    return value


def _known_or_named(rows: list[_Row], data: WorkbookData, plan: ImportPlan) -> list[_Row]:
    """The rows whose customer is one of the workbook's or can be made: a customer ID the
    workbook lacks, with no name, e-mail, phone or tax ID beside it (a note's parent, say),
    is rejected rather than made a customer of its ID alone."""
    held = _customer_ids(data)
    kept = []
    for row in rows:
        c = row.customer
        if c.get("customer_id") and not any(c.get(k) for k in (
                "name", "email", "phone", "tax_id")) and nz.record_id(
                c["customer_id"]) not in held:
            plan.rejected.append(Rejected(row.number, "unknown_id"))
            continue
        kept.append(row)
    return kept


def _customer_ids(data: WorkbookData) -> dict[str, str]:
    """The workbook's CustomerIDs, folded as the engine compares them -> as written (the
    first record of an ID used twice)."""
    out: dict[str, str] = {}
    for rid in data.sheets["customers"].frame["customer_id"]:
        if not nz.is_blank(rid):
            out.setdefault(nz.record_id(rid), nz.text(rid))
    return out


MATCH_FIELDS = ("customer_id", "name", "kind", "phone", "email", "tax_id", "address", "city")


def _match_customers(plan: ImportPlan, data: WorkbookData, rows: list[_Row]
                     ) -> dict[int, list[_Row]]:
    """Resolve each row's customer: an existing customer's ID, or a group of source rows
    that are one new customer (keyed by a negative number). Returns new groups."""
    existing = data.sheets["customers"].frame
    by_id = _customer_ids(data)
    pending: list[_Row] = []
    for row in rows:
        rid = row.customer.get("customer_id")
        if rid and nz.record_id(rid) in by_id:
            row.customer_id = by_id[nz.record_id(rid)]
        elif rid:
            row.customer_id = nz.text(rid).strip()  # a new customer with its own ID
            pending.append(row)
        else:
            pending.append(row)
    groups: dict[int, list[_Row]] = {}
    if not pending:
        return groups
    # rows that give the very same customer (a mixed sheet repeats it on every deal) are
    # matched once: the matcher sees each distinct customer, not each row
    distinct: dict[tuple[Any, ...], list[_Row]] = {}
    known: dict[tuple[Any, ...], tuple[Any, ...]] = {}  # raw values -> their folded handle
    for row in pending:
        c = row.customer
        raw = (c.get("customer_id"), c.get("name"), c.get("phone"), c.get("email"),
               c.get("tax_id"))
        handle = known.get(raw)
        if handle is None:
            handle = known[raw] = (
                nz.record_id(raw[0]), nz.company_key(raw[1]),
                nz.phone_key(raw[2]) if raw[2] else None,
                nz.text(raw[3]).strip().casefold(), nz.text(raw[4]))
        distinct.setdefault(handle, []).append(row)
    copies = list(distinct.values())
    pending = [members[0] for members in copies]
    columns = {k: [] for k in MATCH_FIELDS}  # type: dict[str, list[Any]]
    base = len(existing)
    frame_old = pd.DataFrame({k: existing[k] if k in existing.columns else None
                              for k in MATCH_FIELDS})
    for row in pending:
        for k in MATCH_FIELDS:
            columns[k].append(row.customer.get(k))
    frame_new = pd.DataFrame(columns)
    frame = pd.concat([frame_old, frame_new], ignore_index=True)
    frame[ROW] = range(len(frame))
    options = data.settings.options
    matches = find_duplicate_customers(frame, options.phone_region,
                                       options.duplicate_threshold)
    group_of: dict[int, int] = {}  # source position -> group number
    target_of: dict[int, str] = {}
    existing_ids = existing["customer_id"].tolist()
    for number, match in enumerate(matches):
        olds = [i for i in match.indices if i < base]
        news = [i - base for i in match.indices if i >= base]
        if not news:
            continue
        if olds:
            best = max((p for p in match.pairs if (p.a < base) != (p.b < base)),
                       key=lambda p: p.score, default=None)
            anchor = (best.a if best and best.a < base else best.b) if best else olds[0]
            cid = nz.text(existing_ids[anchor])
            for position in news:
                target_of[position] = cid
            if len(olds) > 1 and len({nz.record_id(existing_ids[i]) for i in olds}) > 1:
                plan.ambiguous.append((pending[news[0]].number,
                                       [nz.text(existing_ids[i]) for i in olds]))
        else:
            for position in news:
                group_of[position] = number
    names = existing["name"].map(nz.company_key)
    holders = names.value_counts()
    for position, row in enumerate(pending):
        same = copies[position]
        if position in target_of:
            if row.customer_id and nz.record_id(row.customer_id) not in by_id:
                groups.setdefault(-1 - position, []).extend(same)  # its own new ID wins
                continue
            for member in same:
                member.customer_id = target_of[position]
            continue
        key = nz.company_key(row.customer.get("name")) if row.customer.get("name") else ""
        if key and holders.get(key, 0) == 1 and not row.customer_id:
            found = nz.text(existing.loc[names == key, "customer_id"].iat[0])
            for member in same:
                member.customer_id = found
            continue
        groups.setdefault(group_of.get(position, -1 - position), []).extend(same)
    # source rows that are one new customer by the same folded name merge too
    by_name: dict[str, int] = {}
    merged: dict[int, list[_Row]] = {}
    for number, members in groups.items():
        key = next((nz.company_key(r.customer.get("name")) for r in members
                    if r.customer.get("name")), "")
        own = next((nz.record_id(r.customer_id) for r in members if r.customer_id), "")
        label = ("id:" + own) if own else ("name:" + key) if key else f"n:{number}"
        target = by_name.setdefault(label, number)
        merged.setdefault(target, []).extend(members)
    return merged


def _match_by_key(data: WorkbookData, rows: list[_Row], key: str) -> dict[int, list[_Row]]:
    """Customers matched by one field's folded value (`--key`); the rest grouped by it."""
    existing = data.sheets["customers"].frame
    if key not in existing.columns:
        from .errors import InputError

        raise InputError(f"--key {key}: not a Customers field",
                         zh=f"--key {key}：不是客户表的字段")

    def fold(value: Any) -> str:
        if key == "phone":
            return nz.phone_key(value) or ""
        if key == "name":
            return nz.company_key(value)
        return schema.normalize_value(value) if not nz.is_blank(value) else ""

    index: dict[str, str] = {}
    by_id = _customer_ids(data)
    for rid, value in zip(existing["customer_id"], existing[key], strict=True):
        if nz.is_blank(rid):
            continue
        if fold(value):
            index.setdefault(fold(value), nz.text(rid))
    groups: dict[int, list[_Row]] = {}
    handles: dict[str, int] = {}
    for n, row in enumerate(rows):
        found = by_id.get(nz.record_id(row.customer.get("customer_id")))
        if found:
            row.customer_id = found
            continue
        value = fold(row.customer.get(key))
        if value in index:
            row.customer_id = index[value]
            continue
        number = handles.setdefault(value, n) if value else n
        groups.setdefault(number, []).append(row)
    return groups


def _upsert_customers(plan: ImportPlan, data: WorkbookData, groups: dict[int, list[_Row]],
                      rows: list[_Row], mint: dict[str, Any], prefer: Prefer) -> None:
    sheet = data.sheets["customers"]
    for members in groups.values():
        values: dict[str, Any] = {}
        for row in members:  # rows repeated inside the source merge first
            for k, v in row.customer.items():
                values.setdefault(k, v)
        hint = next((r.owner_hint for r in members if r.owner_hint), None)
        if hint:
            values.setdefault("owner", hint)
        cid = next((r.customer_id for r in members if r.customer_id), None) or next(
            mint["customers"])
        values["customer_id"] = cid
        for row in members:
            row.customer_id = cid
        plan.new.append(NewRecord("customers", cid, values, members[0].number))
    cells = _Cells(sheet.frame)
    existing_rows = cells.rows_by_id("customer_id")
    grouped = {id(r) for members in groups.values() for r in members}
    incoming: dict[str, tuple[str, dict[str, Any], int]] = {}  # the first value of each field
    folded: dict[str, str] = {}
    last: dict[str, dict[str, Any]] = {}  # each customer's last row values merged
    for row in (r for r in rows if id(r) not in grouped):
        if not row.customer_id:
            continue
        key = folded.get(row.customer_id)
        if key is None:
            key = folded[row.customer_id] = nz.record_id(row.customer_id)
        if key not in existing_rows or last.get(key) == row.customer:
            continue  # (a mixed sheet repeats its customer's values on every deal row)
        last[key] = row.customer
        _, merged, _ = incoming.setdefault(key, (row.customer_id, {}, row.number))
        for name, value in row.customer.items():
            merged.setdefault(name, value)
    for key, (cid, values, number) in incoming.items():
        plan.matched["customers"] += 1
        _fill(plan, cells, existing_rows[key], "customers", cid, values, number, prefer)


class _Cells:
    """A sheet's frame read by position, each column turned into a list once (a pandas
    look-up per cell costs more than the comparison)."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame
        self._lists: dict[str, list[Any]] = {}

    def __contains__(self, name: str) -> bool:
        return name in self.frame.columns

    def column(self, name: str) -> list[Any]:
        found = self._lists.get(name)
        if found is None:
            found = self._lists[name] = self.frame[name].tolist()
        return found

    def rows_by_id(self, id_field: str) -> dict[str, int]:
        """Folded ID -> the position of its first record."""
        out: dict[str, int] = {}
        for at, value in enumerate(self.column(id_field)):
            if not nz.is_blank(value):
                out.setdefault(nz.record_id(value), at)
        return out


def _fill(plan: ImportPlan, cells: _Cells, at: int, sheet: str, record_id: str,
          incoming: dict[str, Any], source_row: int, prefer: Prefer) -> None:
    """Fill blanks, list conflicts (or take the source's value when preferred)."""
    for name, value in incoming.items():
        if name in ("customer_id", "opportunity_id", "interaction_id") or name not in \
                cells or nz.is_blank(value):
            continue
        old = cells.column(name)[at]
        if _same(old, value, f"{sheet}.{name}"):
            continue
        where = (sheet, record_id, name)
        if where in plan.touched:
            continue  # a repeated source row: its first value is the change or conflict
        plan.touched.add(where)
        if nz.is_blank(old) or prefer == "source":
            plan.changes.append(Change(sheet, record_id, name, None if nz.is_blank(old)
                                       else old, value, int(cells.column(ROW)[at]), source_row))
        elif prefer == "none":
            plan.conflicts.append(Conflict(sheet, record_id, name, old, value, source_row))


def _upsert_children(plan: ImportPlan, data: WorkbookData, rows: list[_Row],
                     mint: dict[str, Any], prefer: Prefer, folded: dict[Any, str]) -> None:
    """Deals and interactions matched or added; `folded`: the titles of the workbook's deals
    and the source's, folded (each distinct one once, in one batch)."""
    opp_frame = data.sheets["opportunities"].frame

    def title_key(value: Any) -> str:
        found = folded.get(value)
        if found is None:
            found = folded[value] = nz.name_words(value)
        return found

    cells = _Cells(opp_frame)
    by_id = cells.rows_by_id("opportunity_id")
    by_key: dict[tuple[str, str], list[Any]] = {}
    for index, (cid, title) in enumerate(zip(opp_frame["customer_id"], opp_frame["title"],
                                             strict=True)):
        if not nz.is_blank(title):
            by_key.setdefault((nz.record_id(cid), title_key(title)), []).append(
                index)
    new_deals: dict[tuple[str, str, Any], str] = {}
    touch_key: tuple[str, dt.date | None, str]
    touch_frame = data.sheets["interactions"].frame
    touches = {(nz.record_id(c), nz.parse_date(d), schema.normalize_value(s))
               for c, d, s in zip(touch_frame["customer_id"], touch_frame["date"],
                                  touch_frame["summary"], strict=True)
               } if any(r.touch for r in rows) else set()
    seen_deals: set[str] = set()
    folded_ids: dict[str, str] = {}  # a customer's ID -> folded (rows repeat customers)
    for row in rows:
        if row.customer_id is None:
            continue
        deal_id = None
        if row.deal:
            deal = dict(row.deal, customer_id=row.customer_id)
            rid = deal.get("opportunity_id")
            found = by_id.get(nz.record_id(rid)) if rid else None
            cid = folded_ids.get(row.customer_id)
            if cid is None:
                cid = folded_ids[row.customer_id] = nz.record_id(row.customer_id)
            title = title_key(deal.get("title"))
            if found is None and deal.get("title"):
                for index in by_key.get((cid, title), []):
                    amount = nz.parse_number(cells.column("amount")[index])
                    if deal.get("amount") is None or amount is None or _same(
                            amount, deal["amount"]):
                        found = index
                        break
            if found is None and not (deal.get("title") or deal.get("stage")):
                deal = {}  # only a reference to a deal the workbook does not have
            elif found is not None:
                deal_id = nz.text(cells.column("opportunity_id")[found])
                if deal_id not in seen_deals:
                    plan.matched["opportunities"] += 1
                    seen_deals.add(deal_id)
                _fill(plan, cells, found, "opportunities", deal_id, deal, row.number,
                      prefer)
            if deal and found is None:
                key = (cid, title, deal.get("amount"))
                if key in new_deals and not rid:
                    deal_id = new_deals[key]  # the same deal twice in the source
                else:
                    deal_id = nz.text(rid).strip() if rid else next(mint["opportunities"])
                    new_deals[key] = deal_id
                    deal["opportunity_id"] = deal_id
                    plan.new.append(NewRecord("opportunities", deal_id, deal, row.number))
        if row.touch:
            touch = dict(row.touch, customer_id=row.customer_id)
            if deal_id and not touch.get("opportunity_id"):
                touch["opportunity_id"] = deal_id
            touch_key = (nz.record_id(row.customer_id), nz.parse_date(touch.get("date")),
                         schema.normalize_value(touch.get("summary")))
            if touch_key in touches:
                plan.matched["interactions"] += 1
                continue
            touches.add(touch_key)
            tid = touch.pop("interaction_id", None)
            touch["interaction_id"] = nz.text(tid).strip() if tid else next(
                mint["interactions"])
            touch.setdefault("kind", None)
            plan.new.append(NewRecord("interactions", touch["interaction_id"], touch,
                                      row.number))


# ---------------------------------------------------------------------------------------------
# Applying


def queue_import(session: Any, data: WorkbookData, plan: ImportPlan) -> dict[str, Any]:
    """Queue the plan on a session (cells changed, records appended inside each Table).
    Returns what undo needs: every changed cell as stored before, and each sheet's block of
    appended rows with the Table's extent before (`xlcrm.merge.undo_record` puts them
    back, as it does a merge's)."""
    cells = []
    for change in plan.changes:
        sheet = data.sheets[change.sheet]
        cells += session.set_cells_undoable(sheet.name, [(change.row,
                                                          sheet.columns[change.field],
                                                          change.new)])
    blocks = []
    for key in KINDS:  # (fields the sheet has no column for are left out by the session)
        records = [r.values for r in plan.new if r.sheet == key]
        if records:
            blocks.append(session.append_undoable(key, records))
    return {"kind": "import", "backend": session.backend, "cells": cells, "blocks": blocks}


def staged_import(tracker: Any, data: WorkbookData, plan: ImportPlan) -> Any:
    """Log the plan's changed cells and new records on a change-log tracker (job ``import``,
    the tracker's user), as `queue_import` writes them, and stage them in the history
    (`Tracker.stage`): a second process does it while the first writes the workbook, and
    the first commits them once the write succeeded (`commit_import`)."""
    for key in KINDS:
        sheet = data.sheets[key]
        cells = [(c.row, sheet.columns[c.field], c.new) for c in plan.changes if c.sheet == key]
        records = [r.values for r in plan.new if r.sheet == key]
        tracker.apply(key, cells, records, job="import", user=tracker.run.user,
                      fields=sheet.columns, log_only=True)
    return tracker.stage()


def commit_import(tracker: Any, written: tuple[str | None, dict[str, Any]]) -> int:
    """Commit what `staged_import` staged, with the written file's hash and what the
    import's undo needs (`written`); returns the number of entries."""
    sha_after, undo = written
    run = tracker.run
    return int(tracker.commit(sha_after, (run.at, run.user, [undo["source"]], undo["added"],
                                          undo["record"], sha_after or "")))


# ---------------------------------------------------------------------------------------------
# The preview


def _shown(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def nothing_message(plan: ImportPlan, lang: str) -> str:
    """Why an empty plan has nothing to write, in `lang`: no column names a field, the source
    has no rows, every row was rejected, only conflicts are left to choose, or the workbook
    holds it all already."""
    from .messages import t

    if not any(c.concept for c in plan.columns):
        headers = [c.header for c in plan.columns if c.header]
        return t("import_nothing_mapped", lang, headers=", ".join(headers) or "-")
    if not plan.rows:
        return t("import_nothing_rows", lang)
    if plan.conflicts:
        return t("import_nothing_conflicts", lang, n=len(plan.conflicts))
    if len({r.source_row for r in plan.rejected}) >= plan.rows:
        return t("import_nothing_rejected", lang)
    return t("import_nothing", lang)


def preview_lines(plan: ImportPlan, lang: str, limit: int = 20) -> list[str]:
    """The dry run's report as lines of text in `lang`: the mapping, what is new, what
    changes (old → new), conflicts, rejected rows, unknown stages and people."""
    from .messages import t

    out = [t("import_source", lang, source=plan.source, rows=plan.rows)]
    for column in plan.columns:
        if column.concept:
            out.append(t("import_mapped", lang, header=column.header, field=column.concept,
                         confidence=round(column.confidence * 100),
                         how=t(f"import_how_{column.how}", lang)))
    left = [c.header for c in plan.columns if not c.concept and c.header]
    if left:
        out.append(t("import_left_out", lang, headers=", ".join(left)))
    counts = plan.counts()
    out.append(t("import_counts", lang, **{f"new_{k}": v for k, v in counts["new"].items()},
                 **{f"upd_{k}": v for k, v in counts["updated"].items()},
                 cells=len(plan.changes)))
    for record in plan.new[:limit]:
        name = record.values.get("name") or record.values.get("title") or \
            record.values.get("summary") or ""
        out.append(t("import_new", lang, sheet=t(f"sheet_{record.sheet}", lang),
                     id=record.record_id, name=_shown(name), row=record.source_row))
    if len(plan.new) > limit:
        out.append(t("import_more", lang, n=len(plan.new) - limit))
    for change in plan.changes[:limit]:
        out.append(t("import_change", lang, id=change.record_id, field=change.field,
                     old=_shown(change.old) or "—", new=_shown(change.new),
                     row=change.source_row))
    if len(plan.changes) > limit:
        out.append(t("import_more", lang, n=len(plan.changes) - limit))
    for conflict in plan.conflicts[:limit]:
        out.append(t("import_conflict", lang, id=conflict.record_id, field=conflict.field,
                     workbook=_shown(conflict.workbook), source=_shown(conflict.source),
                     row=conflict.source_row))
    if len(plan.conflicts) > limit:
        out.append(t("import_more", lang, n=len(plan.conflicts) - limit))
    for rejected in plan.rejected[:limit]:
        out.append(t("import_rejected", lang, row=rejected.source_row,
                     reason=t(f"import_reject_{rejected.reason}", lang)))
    if len(plan.rejected) > limit:
        out.append(t("import_more", lang, n=len(plan.rejected) - limit))
    if plan.unknown_stages:
        out.append(t("import_unknown_stages", lang, stages=", ".join(
            f"{k} ({v})" for k, v in plan.unknown_stages.items())))
    if plan.new_people:
        out.append(t("import_new_people", lang, people=", ".join(
            f"{k} ({v})" for k, v in plan.new_people.items())))
    for row, field_name, value in plan.unparsed[:limit]:
        out.append(t("import_unparsed", lang, row=row, field=field_name, value=_shown(value)))
    for row, candidates in plan.ambiguous[:limit]:
        out.append(t("import_ambiguous", lang, row=row, ids=", ".join(candidates)))
    if plan.skipped:
        out.append(t("import_skipped", lang, **{k: plan.skipped.get(k, 0) for k in
                                                 ("title", "blank", "totals")}))
    return out


def preview_html(plan: ImportPlan, lang: str) -> str:
    """The preview as a page: new records in green, changed cells with the old value struck
    through beside the new one, conflicts in amber, rejected rows in grey."""
    from html import escape

    from .messages import t

    def row(cells: list[str], css: str = "") -> str:
        return f"<tr class='{css}'>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"

    parts = [f"<!doctype html><html lang='{lang}'><meta charset='utf-8'>",
             f"<title>{escape(t('import_title', lang))}</title><style>"
             "body{font-family:sans-serif;margin:2em}td,th{border:1px solid #ccc;"
             "padding:4px 8px}table{border-collapse:collapse;margin-bottom:2em}"
             ".new{background:#e6f4ea}.old{color:#b3261e;text-decoration:line-through}"
             ".conflict{background:#fff4d6}.rejected{color:#777}</style>",
             f"<h1>{escape(t('import_title', lang))}</h1>",
             "<p>" + "<br>".join(escape(line) for line in preview_lines(plan, lang, 0)[:1])
             + "</p>"]
    parts.append(f"<h2>{escape(t('import_h_new', lang))}</h2><table>")
    for record in plan.new:
        shown = "; ".join(f"{k}: {_shown(v)}" for k, v in record.values.items()
                          if v not in (None, ""))
        parts.append(row([escape(t(f"sheet_{record.sheet}", lang)), escape(record.record_id),
                          escape(shown), str(record.source_row)], "new"))
    parts.append(f"</table><h2>{escape(t('import_h_changed', lang))}</h2><table>")
    for change in plan.changes:
        parts.append(row([escape(change.record_id), escape(change.field),
                          f"<span class='old'>{escape(_shown(change.old))}</span> → "
                          f"<b>{escape(_shown(change.new))}</b>", str(change.source_row)]))
    parts.append(f"</table><h2>{escape(t('import_h_conflicts', lang))}</h2><table>")
    for conflict in plan.conflicts:
        parts.append(row([escape(conflict.record_id), escape(conflict.field),
                          escape(_shown(conflict.workbook)), escape(_shown(conflict.source)),
                          str(conflict.source_row)], "conflict"))
    parts.append(f"</table><h2>{escape(t('import_h_rejected', lang))}</h2><table>")
    for rejected in plan.rejected:
        parts.append(row([str(rejected.source_row),
                          escape(t(f"import_reject_{rejected.reason}", lang))], "rejected"))
    parts.append(f"</table><h2>{escape(t('import_h_mapping', lang))}</h2><table>")
    for column in plan.columns:
        parts.append(row([escape(column.header), escape(column.concept or "—"),
                          f"{round(column.confidence * 100)}%", escape(column.how)]))
    parts.append("</table></html>")
    return "\n".join(parts)
