"""The workbook mirrored into a real database: SQLite (default) or PostgreSQL.

`mirror_data` brings a database up to date with a workbook as read, incrementally and in one
transaction:

- **Tables.** ``customers``, ``opportunities``, ``interactions`` (one column per field, typed:
  text, date, numeric; probability as a fraction 0–1 like Settings; every declared Custom
  Field as a typed column ``cf_<header>``; every other extra column in the JSON column
  ``extra``; ``sheet_row``, ``row_hash``, ``mirrored_at`` and ``deleted_at``), ``people``,
  ``stages``, ``stage_history`` (each stay of each deal in a stage, from the change log) and
  ``change_log`` (the change log's entries, append-only), plus ``xlcrm_schema`` (the schema
  version; `_migrate` brings an older database up) and ``xlcrm_mirror`` (the last run).
- **Keys.** Primary keys are our IDs. ``opportunities.customer_id``,
  ``interactions.customer_id`` and ``interactions.opportunity_id`` are foreign keys
  (``ON DELETE RESTRICT``); a reference to a record that is not in the workbook (an
  `unknown-customer` error) is left NULL there and kept as written in ``extra``, so the
  mirror loads whatever the workbook holds and the keys stay true. A record without an ID
  (not synced yet) or with an ID used twice (after the first) is not mirrored, and counted.
- **Incremental.** Each record's content hash (``row_hash``) is compared with the
  database's: only new and changed records are written; a record gone from the workbook is
  marked ``deleted_at`` (kept, never deleted, so history and keys stay); one that comes back
  is live again. PostgreSQL loads through COPY into a temporary table and one
  ``INSERT … ON CONFLICT DO UPDATE``; SQLite through ``executemany`` of the same statement.
- **Views.** ``v_pipeline_by_stage`` and ``v_forecast_by_month`` (weighted by the deal's
  probability, else its stage's), examples for a BI tool (docs/mirror.md).

The address is a path (or ``sqlite:///path``) or ``postgresql://…``; psycopg 3 is imported
only for PostgreSQL.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import queue
import re
import sqlite3
import tempfile
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import normalize as nz
from . import progress, schema
from .background import Background
from .errors import BadDatabaseUrl, MirrorUnavailable
from .history import History, history_path
from .reader import ROW, WorkbookData

SCHEMA_VERSION = 1
SHEET_KEYS = ("customers", "opportunities", "interactions")  # the order keys need
REFERENCES = {  # sheet -> (column, referenced sheet)
    "opportunities": (("customer_id", "customers"),),
    "interactions": (("customer_id", "customers"), ("opportunity_id", "opportunities")),
}
NUMERIC = frozenset({"money", "number", "percent", "rating"})
DATES = frozenset({"date"})


@dataclass
class MirrorResult:
    """What one mirror run did, per sheet."""

    url: str
    added: dict[str, int] = field(default_factory=dict)
    updated: dict[str, int] = field(default_factory=dict)
    deleted: dict[str, int] = field(default_factory=dict)
    unchanged: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)  # no ID, or an ID used twice
    change_log: int = 0  # entries appended

    def to_json(self) -> dict[str, Any]:
        return {"url": self.url, "added": self.added, "updated": self.updated,
                "deleted": self.deleted, "unchanged": self.unchanged, "skipped": self.skipped,
                "change_log": self.change_log}


def default_url(workbook: Path) -> str:
    """The SQLite file beside the workbook: ``crm.xlsx`` → ``crm.mirror.sqlite``."""
    return str(workbook.with_name(f"{workbook.stem}.mirror.sqlite"))


def resolve_url(url: str | None, workbook: Path) -> str:
    """The address to use: blank or "sqlite" means the file beside the workbook; a relative
    SQLite path is taken from the workbook's folder (a watcher's working folder is not the
    user's)."""
    url = (url or "").strip()
    if not url or url.lower() == "sqlite":
        return default_url(workbook)
    if "://" not in url and not Path(url).is_absolute():
        return str(workbook.parent / url)
    return url


def redact(url: str) -> str:
    """An address fit to print: a password in it replaced by ***."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


# ---------------------------------------------------------------------------------------------
# Columns and values


@dataclass(frozen=True)
class Column:
    name: str  # in the database
    source: str  # frame column
    kind: str  # "text", "date", "number", "fraction"


def custom_column_name(header: str) -> str:
    """A Custom Field's column: ``cf_`` and its header folded to word characters."""
    slug = re.sub(r"\W+", "_", schema.normalize_value(header)).strip("_")
    return "cf_" + (slug or "field")[:40]


def columns_of(sheet_key: str, data: WorkbookData) -> list[Column]:
    """The typed columns of a sheet's table: its fields, then its declared Custom Fields."""
    sdef = schema.SHEETS_BY_KEY[sheet_key]
    out = []
    for f in sdef.fields:
        kind = ("fraction" if f.type == "percent" else "number" if f.type in NUMERIC
                else "date" if f.type in DATES else "text")
        out.append(Column(f.key, f.key, kind))
    taken = {c.name for c in out}
    for source, custom in data.custom_columns(sheet_key):
        name = custom_column_name(custom.column)
        if name in taken:
            continue
        taken.add(name)
        kind = {"number": "number", "date": "date"}.get(custom.type, "text")
        out.append(Column(name, source, kind))
    return out


def _typed(series: pd.Series, kind: str, day_first: bool) -> list[Any]:
    """A column's values as the database stores them (None where blank or not parseable):
    numbers as floats, dates as ISO text (SQLite keeps text; PostgreSQL's COPY parses it into
    its DATE), anything else as text; each distinct value converted once."""
    if kind == "number" or kind == "fraction":
        numbers = (nz.fraction_column(series) if kind == "fraction"
                   else nz.number_column(series)).to_numpy(dtype=float)
        return [None if np.isnan(v) else float(v) for v in numbers.tolist()]
    if kind == "date":
        parse = nz.date_parser(day_first)
        return list(nz.map_unique(series, lambda v: _iso(parse(v))))
    def other(value: Any) -> str | None:
        return None if nz.is_blank(value) else _text(value)

    # text as it is (a factorised map costs more than this test on a column of names)
    return [v if type(v) is str and v and not v.isspace() else other(v)
            for v in series.tolist()]


def _iso(day: dt.date | None) -> str | None:
    return None if day is None else day.isoformat()


def _text(value: Any) -> str:
    if isinstance(value, dt.datetime | pd.Timestamp):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _json_value(value: Any) -> Any:
    if nz.is_blank(value):
        return None
    if isinstance(value, dt.date | pd.Timestamp):
        return value.isoformat()
    if isinstance(value, np.generic):
        return value.item()
    return value


@dataclass
class Records:
    """One sheet's records ready to load: IDs, their hashes, and a row maker."""

    sheet: str
    columns: list[Column]
    frame: pd.DataFrame  # the mirrored records (IDs present, each ID once)
    ids: list[str]
    hashes: list[str]
    skipped: int
    day_first: bool
    folded: list[str]  # the IDs as the engine compares them

    def columns_at(self, positions: Sequence[int], known: dict[str, dict[str, str]],
                   now: str) -> list[list[Any]]:
        """The database columns of the records at `positions` (in `frame`): the typed
        columns, the extra JSON, sheet_row, row_hash, mirrored_at, deleted_at (None).
        Column-wise: each column converted once, never a row at a time."""
        part = self.frame.iloc[list(positions)]
        columns = [_typed(part[c.source], c.kind, self.day_first) for c in self.columns]
        columns[0] = [self.ids[p] for p in positions]
        used = {c.source for c in self.columns} | {ROW}
        extras = {c: part[c].tolist() for c in part.columns if c not in used}
        extra_of: list[dict[str, Any]] = [{} for _ in range(len(part))]
        for name, values in extras.items():
            for n, value in enumerate(values):
                if (v := _json_value(value)) is not None:
                    extra_of[n][name] = v
        names = [c.name for c in self.columns]
        for column, target in REFERENCES.get(self.sheet, ()):  # the ID as the referenced
            at = names.index(column)                           # record writes it
            refs, index = columns[at], known[target]
            written = set(index.values())  # most references are written as the ID is
            for n, value in enumerate(refs):
                if value is None:
                    continue
                if value in written:
                    continue
                found = index.get(nz.record_id(value))
                if found is None:
                    extra_of[n][f"{column} (not found)"] = value
                refs[n] = found
        extra = [json.dumps(e, ensure_ascii=False, default=str) if e else None
                 for e in extra_of]
        sheet_rows = part[ROW].astype(int).tolist()
        hashes = [self.hashes[p] for p in positions]
        return [*columns, extra, sheet_rows, hashes, [now] * len(part), [None] * len(part)]


def _hex(hashes: np.ndarray) -> list[str]:
    """64-bit hashes as 16 hex digits each (as ``format(h, "016x")``, the bytes at once)."""
    text = hashes.astype(">u8").tobytes().hex()
    return [text[n:n + 16] for n in range(0, len(text), 16)]


def records_of(data: WorkbookData, sheet_key: str) -> Records:
    """A sheet's records with their IDs and content hashes (vectorised: pandas hashes each
    column, the row hash combines them)."""
    sheet = data.sheets[sheet_key]
    columns = columns_of(sheet_key, data)
    frame = sheet.frame
    id_field = schema.SHEETS_BY_KEY[sheet_key].id_field or ""
    # as written (text taken as it is, a factorised map costs more on unique IDs); one record
    # per ID folded as the engine folds them (ASCII IDs by lower case alone)
    ids = np.array([v.strip() if type(v) is str else "" if nz.is_blank(v) else nz.text(v)
                    for v in frame[id_field].tolist()], dtype=object)
    folded = np.array([v.lower() if v.isascii() else nz.record_id(v) for v in ids.tolist()],
                      dtype=object)
    keep = (ids != "") & ~pd.Series(folded).duplicated().to_numpy()
    kept = frame[keep]
    hashed = pd.util.hash_pandas_object(kept.drop(columns=[ROW]).astype(object),
                                        index=False).to_numpy()
    day_first = nz.dayfirst(data.settings.options.date_order, data.lang)
    return Records(sheet_key, columns, kept, list(ids[keep]),
                   _hex(hashed),
                   int((~keep).sum()), day_first, list(folded[keep]))


# ---------------------------------------------------------------------------------------------
# The databases


class _Database:
    """What differs between SQLite and PostgreSQL."""

    placeholder = "?"
    json_type = "TEXT"
    date_type = "TEXT"
    number_type = "REAL"
    time_type = "TEXT"

    def __init__(self, connection: Any) -> None:
        self.connection = connection

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self.connection.execute(sql, params)

    def column_names(self, table: str) -> set[str]:
        raise NotImplementedError

    def prepare(self, columns: list[list[Any]]) -> Any:
        """Columns of values (None blank) as this database's `load` takes them, made by the
        thread that reads the workbook while the last table loads."""
        raise NotImplementedError

    def load(self, table: str, names: list[str], rows: Any, key: str,
             new: bool = False) -> None:
        """Upsert the `prepare`d `rows` by `key`; `new`: every row is new (a plain insert,
        faster)."""
        raise NotImplementedError

    def month(self, column: str) -> str:
        raise NotImplementedError

    def sql_type(self, kind: str) -> str:
        return {"date": self.date_type, "number": self.number_type,
                "fraction": self.number_type}.get(kind, "TEXT")


class _Sqlite(_Database):
    def check_keys(self) -> None:
        """Every foreign key true, or the load fails (and is rolled back): a reference the
        workbook cannot resolve is written NULL (see the module docstring), so a row found
        here is a fault of the mirror's own."""
        broken = self.execute("PRAGMA foreign_key_check").fetchall()
        if broken:
            table, row, target, _ = broken[0]
            raise MirrorUnavailable(
                f"{len(broken)} rows would break a foreign key (first: {table} row {row} -> "
                f"{target}); nothing was written",
                zh=f"{len(broken)} 行将违反外键约束（首个：{table} 第 {row} 行 -> {target}）；"
                   "未写入任何内容")

    def column_names(self, table: str) -> set[str]:
        return {row[1] for row in self.execute(f'PRAGMA table_info("{table}")')}

    def prepare(self, columns: list[list[Any]]) -> list[tuple[Any, ...]]:
        return list(zip(*columns, strict=True))

    def load(self, table: str, names: list[str], rows: list[tuple[Any, ...]], key: str,
             new: bool = False) -> None:
        quoted = ", ".join(f'"{n}"' for n in names)
        updates = ", ".join(f'"{n}" = excluded."{n}"' for n in names if n != key)
        conflict = "" if new else f' ON CONFLICT ("{key}") DO UPDATE SET {updates}'
        self.connection.executemany(
            f'INSERT INTO "{table}" ({quoted}) VALUES ({", ".join("?" * len(names))})'
            + conflict, rows)

    def month(self, column: str) -> str:
        return f"substr({column}, 1, 7)"


class _Postgres(_Database):
    placeholder = "%s"
    json_type = "JSONB"
    date_type = "DATE"
    number_type = "NUMERIC"
    time_type = "TIMESTAMPTZ"

    def column_names(self, table: str) -> set[str]:
        rows = self.execute("SELECT column_name FROM information_schema.columns WHERE "
                            "table_schema = current_schema() AND table_name = %s", (table,))
        return {row[0] for row in rows}

    def prepare(self, columns: list[list[Any]]) -> list[str]:
        return _csv_blocks(columns)

    def load(self, table: str, names: list[str], rows: list[str], key: str,
             new: bool = False) -> None:
        quoted = ", ".join(f'"{n}"' for n in names)
        if new:  # straight into the table
            _copy_in(self, table, names, rows)
            return
        updates = ", ".join(f'"{n}" = excluded."{n}"' for n in names if n != key)
        self.execute(f'CREATE TEMP TABLE "load_{table}" (LIKE "{table}" INCLUDING DEFAULTS) '
                     "ON COMMIT DROP")
        _copy_in(self, f"load_{table}", names, rows)
        self.execute(f'INSERT INTO "{table}" ({quoted}) SELECT {quoted} FROM "load_{table}" '
                     f'ON CONFLICT ("{key}") DO UPDATE SET {updates}')
        self.execute(f'DROP TABLE "load_{table}"')

    def month(self, column: str) -> str:
        return f"to_char({column}, 'YYYY-MM')"


@contextmanager
def connect(url: str) -> Iterator[_Database]:
    """A database in one transaction: committed when the block ends, rolled back on error.
    A new SQLite file is loaded with its foreign keys checked once at the end
    (`_Sqlite.check_keys`), an existing one with each row checked as it is written."""
    if url.startswith(("postgresql://", "postgres://")):
        try:
            import psycopg
        except ImportError:
            raise BadDatabaseUrl("PostgreSQL needs psycopg: pip install 'xlcrm[postgres]'",
                                 zh="PostgreSQL 需要 psycopg：pip install 'xlcrm[postgres]'"
                                 ) from None
        try:
            connection = psycopg.connect(url)
        except psycopg.Error as error:
            raise MirrorUnavailable(f"{redact(url)}: {_first_line(error)}",
                                    zh=f"{redact(url)}：无法连接（{_first_line(error)}）"
                                    ) from None
        try:
            with connection.transaction():
                # a mirror can be made again from the workbook: its commit need not wait
                # for the server's disk (a crash of the server loses the last load, never
                # the database's consistency)
                connection.execute("SET LOCAL synchronous_commit = off")
                yield _Postgres(connection)
        except psycopg.Error as error:
            raise MirrorUnavailable(f"{redact(url)}: {_first_line(error)}",
                                    zh=f"{redact(url)}：写入失败（{_first_line(error)}）"
                                    ) from None
        finally:
            connection.close()
        return
    path = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else url
    if "://" in path:
        raise BadDatabaseUrl(f"{redact(url)}: {BadDatabaseUrl.__doc__}",
                             zh=f"{redact(url)}：不是可用的数据库地址（SQLite 文件路径或 "
                                "postgresql://…）")
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        first = not Path(path).exists() or Path(path).stat().st_size == 0
        lite = sqlite3.connect(path, isolation_level=None)
    except (OSError, sqlite3.Error) as error:
        raise MirrorUnavailable(f"{path}: {error}", zh=f"{path}：无法打开（{error}）") from None
    try:
        # (set before the transaction, or it has no effect) a first load checks its foreign
        # keys in one pass at the end: a check per row costs a fifth of the load
        lite.execute(f"PRAGMA foreign_keys = {'OFF' if first else 'ON'}")
        lite.execute("PRAGMA cache_size = -262144")  # up to 256 MB: a first load of 400k
        #                                              records then never spills pages
        lite.execute("BEGIN IMMEDIATE")
        try:
            db = _Sqlite(lite)
            yield db
            if first:
                db.check_keys()
        except BaseException:
            lite.rollback()
            raise
        lite.commit()
    except sqlite3.Error as error:
        raise MirrorUnavailable(f"{path}: {error}", zh=f"{path}：写入失败（{error}）") from None
    finally:
        lite.close()


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


# ---------------------------------------------------------------------------------------------
# Schema and migrations


def _create(db: _Database, data: WorkbookData) -> None:
    """Create what is missing (every statement is IF NOT EXISTS) and add new columns."""
    db.execute("CREATE TABLE IF NOT EXISTS xlcrm_schema (version INTEGER NOT NULL)")
    found = db.execute("SELECT version FROM xlcrm_schema").fetchall()
    if not found:
        db.execute(f"INSERT INTO xlcrm_schema (version) VALUES ({SCHEMA_VERSION})")
    elif int(found[0][0]) > SCHEMA_VERSION:
        raise BadDatabaseUrl(f"the database was made by a newer xlcrm (schema {found[0][0]})",
                             zh=f"数据库由更新版本的 xlcrm 创建（结构版本 {found[0][0]}）")
    else:
        _migrate(db, int(found[0][0]))
    t = db.time_type
    primary = " PRIMARY KEY" if isinstance(db, _Sqlite) else " NOT NULL"
    for key in SHEET_KEYS:
        columns = columns_of(key, data)
        id_column = columns[0].name
        # (PostgreSQL: the key is added after the first load, by `_keys`)
        defs = [f'"{id_column}" TEXT{primary}']
        for c in columns[1:]:
            references = dict(REFERENCES.get(key, ()))
            if c.name in references and isinstance(db, _Sqlite):  # (PostgreSQL: `_keys`)
                target = references[c.name]
                target_id = schema.SHEETS_BY_KEY[target].id_field
                defs.append(f'"{c.name}" TEXT REFERENCES "{target}" ("{target_id}") '
                            "ON DELETE RESTRICT")
            elif c.name in references:
                defs.append(f'"{c.name}" TEXT')
            else:
                defs.append(f'"{c.name}" {db.sql_type(c.kind)}')
        defs += [f"extra {db.json_type}", "sheet_row INTEGER", "row_hash TEXT NOT NULL",
                 f"mirrored_at {t} NOT NULL", f"deleted_at {t}"]
        db.execute(f'CREATE TABLE IF NOT EXISTS "{key}" ({", ".join(defs)})')
        have = db.column_names(key)
        for c in columns:  # a field added in a newer xlcrm, a Custom Field declared since
            if c.name not in have:
                db.execute(f'ALTER TABLE "{key}" ADD COLUMN "{c.name}" {db.sql_type(c.kind)}')
    db.execute("CREATE TABLE IF NOT EXISTS people (name TEXT PRIMARY KEY, email TEXT, "
               "role TEXT, active BOOLEAN)")
    db.execute(f"CREATE TABLE IF NOT EXISTS stages (name TEXT PRIMARY KEY, probability "
               f"{db.number_type}, sort_order INTEGER, kind TEXT, max_days INTEGER)")
    db.execute(f"CREATE TABLE IF NOT EXISTS stage_history (opportunity_id TEXT NOT NULL, "
               f"stage TEXT, entered {db.date_type}, left_at {db.date_type}, days INTEGER)")
    db.execute(f"CREATE TABLE IF NOT EXISTS change_log (seq INTEGER{primary}, run_id TEXT, "
               f"at {t}, author TEXT, source TEXT, job TEXT, sheet TEXT, record_id TEXT, "
               f"action TEXT, field TEXT, old_value TEXT, new_value TEXT)")
    db.execute(f"CREATE TABLE IF NOT EXISTS xlcrm_mirror (at {t}, workbook TEXT, sha256 TEXT)")
    _views(db)


_INDEXES = {  # table -> the columns of each index the dashboard's questions need
    "customers": ("owner",), "opportunities": ("customer_id", "stage", "expected_close"),
    "interactions": ("customer_id, date", "opportunity_id"),
    "stage_history": ("opportunity_id",), "change_log": ("record_id",)}
_PRIMARY = {**{k: schema.SHEETS_BY_KEY[k].id_field for k in SHEET_KEYS}, "change_log": "seq"}


def _load_table(db: _Database, key: str, names: list[str], rows: Any, id_column: str,
                new: bool, gone: list[str], moment: str) -> None:
    """One table's part of a mirror: its new and changed rows, its deleted records marked,
    then its keys and indexes."""
    if rows is not None:
        db.load(key, names, rows, id_column, new)
    for start in range(0, len(gone), 500):
        part = gone[start:start + 500]
        marks = ", ".join([db.placeholder] * len(part))
        db.execute(f'UPDATE "{key}" SET deleted_at = {db.placeholder} '
                   f'WHERE "{id_column}" IN ({marks})', [moment, *part])
    _keys(db, key)
    _indexes(db, key)


def _indexes(db: _Database, table: str) -> None:
    """A table's indexes for the dashboard's questions; made after its rows are in (a first
    load into indexed tables is much slower), each once."""
    for columns in _INDEXES.get(table, ()):
        name = "ix_" + re.sub(r"\W+", "_", f"{table} ({columns})").strip("_")
        db.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {table} ({columns})")


def _keys(db: _Database, table: str) -> None:
    """PostgreSQL's primary key of a table and its foreign keys, added once after its first
    load (the tables it references have theirs already): a key added to a loaded table is
    built and checked in one pass, where a key in place does it for each row as it arrives.
    (SQLite can only declare them in CREATE TABLE; see `connect` for when it checks them.)"""
    if not isinstance(db, _Postgres):
        return
    if table in _PRIMARY and not db.execute(
            "SELECT 1 FROM pg_constraint WHERE contype = 'p' AND conrelid = %s::regclass",
            (table,)).fetchone():
        db.execute(f'ALTER TABLE "{table}" ADD CONSTRAINT pk_{table} PRIMARY KEY '
                   f'("{_PRIMARY[table]}")')
    for column, target in REFERENCES.get(table, ()):
        name = f"fk_{table}_{column}"
        if db.execute("SELECT 1 FROM pg_constraint WHERE conname = %s", (name,)).fetchone():
            continue
        db.execute(f'ALTER TABLE "{table}" ADD CONSTRAINT {name} FOREIGN KEY ("{column}") '
                   f'REFERENCES "{target}" ("{_PRIMARY[target]}") ON DELETE RESTRICT')


def _migrate(db: _Database, version: int) -> None:
    """Bring a database of an older schema version up to `SCHEMA_VERSION` (step by step; the
    first version has nothing to migrate from)."""
    steps: dict[int, list[str]] = {}  # version -> statements taking it to version + 1
    while version < SCHEMA_VERSION:
        for statement in steps.get(version, []):
            db.execute(statement)
        version += 1
    db.execute(f"UPDATE xlcrm_schema SET version = {SCHEMA_VERSION}")


def _views(db: _Database) -> None:
    weighted = ("o.amount * COALESCE(o.probability, s.probability)")
    for name, sql in (
        ("v_pipeline_by_stage",
         "SELECT o.stage AS stage, MIN(s.sort_order) AS sort_order, COUNT(*) AS deals, "
         f"SUM(o.amount) AS amount, SUM({weighted}) AS weighted "
         "FROM opportunities o LEFT JOIN stages s ON s.name = o.stage "
         "WHERE o.deleted_at IS NULL GROUP BY o.stage"),
        ("v_forecast_by_month",
         f"SELECT {db.month('o.expected_close')} AS month, COUNT(*) AS deals, "
         f"SUM(o.amount) AS amount, SUM({weighted}) AS weighted "
         "FROM opportunities o LEFT JOIN stages s ON s.name = o.stage "
         "WHERE o.deleted_at IS NULL AND o.expected_close IS NOT NULL "
         "AND COALESCE(s.kind, 'open') = 'open' "
         f"GROUP BY {db.month('o.expected_close')}"),
    ):
        if isinstance(db, _Postgres):
            db.execute(f"CREATE OR REPLACE VIEW {name} AS {sql}")
        else:
            db.execute(f"DROP VIEW IF EXISTS {name}")
            db.execute(f"CREATE VIEW {name} AS {sql}")


# ---------------------------------------------------------------------------------------------
# The run


def mirror_data(data: WorkbookData, url: str | None = None,
                now: dt.datetime | None = None) -> MirrorResult:
    """Bring the database at `url` (default: `default_url`) up to date with `data`: see the
    module docstring.

    Raises:
        BadDatabaseUrl: `url` is no database address xlcrm can use.
        MirrorUnavailable: the database cannot be reached or refused the load (nothing in it
            changed).
    """
    progress.step("mirror")
    url = url or default_url(data.path)
    moment = (now or dt.datetime.now(dt.UTC)).isoformat(timespec="seconds")
    result = MirrorResult(url=redact(url))
    records = {key: records_of(data, key) for key in SHEET_KEYS}
    size = sum(len(r.ids) for r in records.values())
    with connect(url) as db, contextlib.ExitStack() as stack:
        _create(db, data)
        last = _logged_to(db, data)
        spool = None
        if last is not None and isinstance(db, _Postgres):
            handle, name = tempfile.mkstemp(prefix="xlcrm-log-", suffix=".copy")
            os.close(handle)
            spool = Path(name)
            stack.callback(spool.unlink, missing_ok=True)
        pending = None if last is None else stack.enter_context(
            Background(size, _history_work, data.path, last, spool,
                       start_from=PARALLEL_MIRROR))
        known: dict[str, dict[str, str]] = {}  # folded ID -> ID as written
        held = {key: dict(db.execute(
            f'SELECT "{records[key].columns[0].name}", row_hash || CASE WHEN deleted_at IS '
            f"NULL THEN '' ELSE '-' END FROM \"{key}\"").fetchall()) for key in SHEET_KEYS}
        # PostgreSQL's work is done by a thread, in order, while this one makes the next
        # table's rows: the server loads one table as the next is prepared
        loader = stack.enter_context(_InOrder(threaded=isinstance(db, _Postgres)))
        for key in SHEET_KEYS:
            rec = records[key]
            id_column = rec.columns[0].name
            stored = held[key]
            known[key] = dict(zip(rec.folded, rec.ids, strict=True))
            live = set(rec.ids)
            new, changed = [], []
            for n, held_hash in enumerate(map(stored.get, rec.ids)):
                if held_hash is None:
                    new.append(n)
                elif held_hash != rec.hashes[n]:
                    changed.append(n)
            names = [c.name for c in rec.columns] + ["extra", "sheet_row", "row_hash",
                                                     "mirrored_at", "deleted_at"]
            rows = (db.prepare(rec.columns_at(new + changed, known, moment))
                    if new or changed else None)
            gone = [rid for rid, h in stored.items() if rid not in live
                    and not h.endswith("-")]
            # one job a table (the queue holds one): its rows, its deletions, then its keys
            # and indexes, built while this thread makes the next table's rows
            loader.submit(_load_table, db, key, names, rows, id_column, not stored, gone,
                          moment)
            result.added[key], result.updated[key] = len(new), len(changed)
            result.deleted[key] = len(gone)
            result.unchanged[key] = len(rec.ids) - len(new) - len(changed)
            result.skipped[key] = rec.skipped
        loader.close()  # every table loaded (an error there is raised here)
        _settings_tables(db, data)
        result.change_log = 0 if last is None else _history_tables(db, data, last, pending, spool)
        for table in ("change_log", "stage_history"):
            _keys(db, table)
            _indexes(db, table)
        db.execute("DELETE FROM xlcrm_mirror")
        db.execute(f"INSERT INTO xlcrm_mirror (at, workbook, sha256) VALUES "
                   f"({db.placeholder}, {db.placeholder}, {db.placeholder})",
                   [moment, data.path.name, data.sha256])
    return result


def _settings_tables(db: _Database, data: WorkbookData) -> None:
    """People and stages, small: replaced whole."""
    p = db.placeholder
    db.execute("DELETE FROM people")
    for person in data.settings.people:
        db.execute(f"INSERT INTO people (name, email, role, active) VALUES ({p}, {p}, {p}, {p}) "
                   "ON CONFLICT (name) DO NOTHING",
                   [person.name, person.email, person.role, person.active])
    db.execute("DELETE FROM stages")
    for stage in data.settings.stages:
        db.execute(f"INSERT INTO stages (name, probability, sort_order, kind, max_days) VALUES "
                   f"({p}, {p}, {p}, {p}, {p}) ON CONFLICT (name) DO NOTHING",
                   [stage.name, stage.probability, stage.order, stage.kind, stage.max_days])


class _InOrder:
    """Calls made by one thread, in the order submitted, while the submitting thread goes on
    (the database waits on its server or its disk with the GIL released). `close` waits for
    them and raises the first error; after an error the calls left are skipped. Leaving the
    block early skips what is queued and waits for the call under way, so the transaction
    is never rolled back under it. Not `threaded` (SQLite, whose calls hold the GIL while
    they bind values), each call is made at once."""

    def __init__(self, threaded: bool = True) -> None:
        self.jobs: queue.Queue[tuple[Any, tuple[Any, ...]] | None] = queue.Queue(maxsize=1)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.threaded = threaded
        if threaded:
            self.thread.start()

    def submit(self, func: Any, *args: Any) -> None:
        if not self.threaded:
            func(*args)
            return
        if self.error is not None:
            self.close()
        self.jobs.put((func, args))

    def _run(self) -> None:
        while (job := self.jobs.get()) is not None:
            if self.error is None:
                try:
                    job[0](*job[1])
                except BaseException as error:  # noqa: BLE001 - raised again by close()
                    self.error = error

    def close(self) -> None:
        if self.thread.is_alive():
            self.jobs.put(None)
            self.thread.join()
        if self.error is not None:
            error, self.error = self.error, None
            raise error

    def __enter__(self) -> _InOrder:
        return self

    def __exit__(self, kind: object, *_: object) -> None:
        if kind is not None and self.error is None:
            self.error = RuntimeError("left early")  # skip what is queued
        try:
            self.close()
        except BaseException:  # noqa: BLE001 - the error that left the block wins
            if kind is None:
                raise


PARALLEL_MIRROR = 50_000  # records from which the stage history is built in a second process
_MOVING = ("SELECT DISTINCT record_id FROM {db}entries WHERE seq > ? AND sheet = "
           "'opportunities' AND (action != 'changed' OR field = 'stage')")


def _logged_to(db: _Database, data: WorkbookData) -> int | None:
    """The last change-log entry the mirror holds (0: none yet); None without a change log."""
    if not history_path(data.path).exists():
        return None
    return int(db.execute("SELECT COALESCE(MAX(seq), 0) FROM change_log").fetchone()[0])


_LOG_FIELDS = ("seq", "run_id", "at", "user", "source", "job", "sheet", "record_id", "action",
               "field", "old", "new")
_LOG_NAMES = ["seq", "run_id", "at", "author", "source", "job", "sheet", "record_id", "action",
              "field", "old_value", "new_value"]
_LOG_KINDS = {"seq": "ours", "run_id": "ours", "at": "ours", "sheet": "ours", "action": "ours",
              "old": "json", "new": "json"}


def _history_work(workbook: Path, last: int, spool: Path | None
                  ) -> tuple[set[str], list[list[Any]] | None, int]:
    """What the history gives the mirror, read while the records load (pure reading, so a
    second process can do it): the deals whose stays the entries after `last` change, the
    stage_history columns of those deals (of every deal when `last` is 0; None when no
    deal moved), and, with `spool`, the entries after `last` written there as lines of
    COPY's text format, made by SQLite (`at` is ISO 8601 text, which PostgreSQL reads as
    timestamptz), and how many (190 MB of a big log never pass through Python value by
    value)."""
    from .changes import stage_history

    with History(workbook, create=False) as history:
        count = 0
        if spool is not None:
            line = " || char(9) || ".join(_copy_field(f, _LOG_KINDS.get(f, "text"))
                                          for f in _LOG_FIELDS)
            lines = history.db.execute(f"SELECT {line} FROM entries WHERE seq > ? ORDER BY "
                                       "seq", (last,))
            with spool.open("wb") as out:
                while chunk := lines.fetchmany(20_000):
                    count += len(chunk)
                    out.write(("\n".join(r[0] for r in chunk) + "\n").encode("utf-8"))
        moved = {r[0] for r in history.db.execute(_MOVING.format(db=""), (last,))}
        stays = (stage_history(history) if last == 0 else
                 stage_history(history, records=moved) if moved else None)
    if stays is None:
        return moved, None, count

    def days(column: pd.Series) -> list[str | None]:  # ISO dates, whole columns at once
        text = pd.to_datetime(column).dt.strftime("%Y-%m-%d")
        return [None if v is None or v != v else v for v in text.tolist()]

    stages = [None if nz.is_blank(v) else str(v) for v in stays["stage"].tolist()]
    counts = [None if v != v else int(v) for v in stays["days"].astype(float).tolist()]
    return moved, [[str(v) for v in stays["opportunity_id"].tolist()], stages,
                   days(stays["entered"]), days(stays["left"]), counts], count


def _history_tables(db: _Database, data: WorkbookData, last: int, pending: Any,
                    spool: Path | None) -> int:
    """The change log's entries after `last`, and the stage history of the deals those
    entries move (all of it the first time), which `pending` (a `Background` of
    `_history_work`) has read meanwhile, PostgreSQL's lines of the change log into `spool`.
    Returns the entries appended."""
    p = db.placeholder
    if isinstance(db, _Sqlite):  # copied inside SQLite, never through Python
        # (attached until the transaction ends: SQLite cannot detach inside one)
        db.execute("ATTACH DATABASE ? AS xlcrm_history", (str(history_path(data.path)),))
        count = int(db.execute(f"INSERT INTO change_log ({', '.join(_LOG_NAMES)}) SELECT "
                               f"{', '.join(_LOG_FIELDS)} FROM xlcrm_history.entries WHERE "
                               "seq > ? ORDER BY seq", (last,)).rowcount)
        moved, values, _ = pending.result()
    else:
        assert spool is not None
        moved, values, count = pending.result()
        if count:
            _copy_spool(db, "change_log", _LOG_NAMES, spool)
    if values is None:
        return count
    if last == 0:
        db.execute("DELETE FROM stage_history")
    else:
        ids = sorted(moved)
        for start in range(0, len(ids), 500):
            part = ids[start:start + 500]
            db.execute(f"DELETE FROM stage_history WHERE opportunity_id IN "
                       f"({', '.join([p] * len(part))})", part)
    if values[0]:
        db.load("stage_history", ["opportunity_id", "stage", "entered", "left_at", "days"],
                db.prepare(values), "opportunity_id", new=True)
    return count


def _copy_field(column: str, kind: str = "text") -> str:
    r"""SQLite's expression for a column as a field of COPY's text format: NULL as \N; a
    backslash, newline, carriage return and tab escaped, each only where the value has one
    (SQLite's replace copies the text even when it finds nothing). `kind` "json": JSON text,
    which holds no raw newline, CR or tab; "ours": text xlcrm wrote (IDs, times, actions)."""
    base = f"CAST({column} AS TEXT)"
    if kind == "ours":
        return f"COALESCE({base}, '\\N')"
    found = [("'\\'", "'\\\\'")]
    if kind != "json":
        found += [("char(10)", "'\\n'"), ("char(13)", "'\\r'"), ("char(9)", "'\\t'")]
    escaped = base
    for char, written in found:
        escaped = f"replace({escaped}, {char}, {written})"
    test = " OR ".join(f"instr({column}, {char})" for char, _ in found)
    return f"COALESCE(CASE WHEN {test} THEN {escaped} ELSE {base} END, '\\N')"


def _copy_spool(db: _Database, table: str, names: list[str], spool: Path) -> None:
    """COPY a file of lines in the text format into `table`."""
    with spool.open("rb") as lines:
        _copy_in(db, table, names, iter(lambda: lines.read(1 << 20), b""), "")


def _copy_in(db: _Database, table: str, names: list[str], blocks: Iterable[str | bytes],
             options: str = " WITH (FORMAT csv)") -> None:
    """COPY `blocks` of text (CSV from `_csv_blocks` unless `options` say otherwise) into
    `table`, sent by a thread of psycopg's: the next block is read or made while the server
    parses."""
    from psycopg.copy import QueuedLibpqWriter

    quoted = ", ".join(f'"{n}"' for n in names)
    with db.connection.cursor() as cursor, cursor.copy(
            f'COPY "{table}" ({quoted}) FROM STDIN{options}',
            writer=QueuedLibpqWriter(cursor)) as copy:
        for block in blocks:
            copy.write(block)


_CSV_SPECIAL = re.compile('[",\r\n]')
_BLOCK = 20_000  # rows a block


def _csv_blocks(columns: list[list[Any]]) -> list[str]:
    """Columns of values as blocks of CSV text for COPY, built a column at a time (the
    csv module writes a row at a time, holding the GIL the load thread shares): None as an
    unquoted empty field, which COPY reads as NULL; a field with a quote, comma, CR or
    newline, or an empty text, quoted with its quotes doubled; numbers as Python writes
    them. A column with no such field is taken as it is."""
    fields = [_csv_fields(values) for values in columns]
    size = len(fields[0]) if fields else 0
    return ["\n".join(map(",".join, zip(*(f[start:start + _BLOCK] for f in fields),
                                         strict=True))) + "\n"
            for start in range(0, size, _BLOCK)]


def _csv_fields(values: list[Any]) -> list[str]:
    texts = ["" if v is None else v if type(v) is str else repr(v) if type(v) is float
             else str(v) for v in values]
    if not _CSV_SPECIAL.search("\x00".join(texts)) and "" not in values:
        return texts
    return [_csv_quoted(t) if type(v) is str and (not v or _CSV_SPECIAL.search(v)) else t
            for t, v in zip(texts, values, strict=True)]


def _csv_quoted(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'
