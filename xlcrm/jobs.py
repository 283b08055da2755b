"""The library API behind every command, ribbon button and watcher run.

Each job (`sync_job`, `validate_job`, ...) is written once, against a `WorkbookSession`: it
reads the workbook once, runs pure steps over the frames, queues its writes and saves once.
The file functions (`sync_workbook`, ...) run a job on a `FileSession`; the ribbon runs the
same jobs on an `ExcelSession` (see `xlcrm.session`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import memo, notify, pool, progress, schema
from . import normalize as nz
from .analytics import Analytics, analyse
from .background import Background, collector_paused
from .changes import (
    Tracker,
    cell_value,
    newest_entries,
    os_user,
    record_values,
    stage_cells,
    stage_history,
    start_tracking,
    tracked_columns,
    values_at,
)
from .dashboard import layout
from .dedupe import (
    ID_FIELDS,
    all_duplicates,
    clusters_json,
    duplicate_sheet_rows,
    find_duplicate_customers,
)
from .edits import changelog_sheet, duplicates_sheet, issues_sheet
from .errors import (
    AlreadyExists,
    NotAWorkbook,
    RecordNotFound,
    SettingsInvalid,
    UnknownPerson,
    UnsafeToWrite,
    WriteRefused,
)
from .guard import WORKBOOK_SUFFIXES
from .history import Change, History, history_path
from .ids import FilledId, fill_blank_ids
from .issues import Issue, Report
from .merge import apply_merge, plan_merge, undo_record
from .notify import Delivery
from .ownership import non_owner_edits
from .promote import Promotion, promote_won_deals
from .reader import ROW, WorkbookData
from .sample import sample_records, sample_rows
from .schema import Lang
from .session import FileSession, WorkbookSession
from .template import copy_template
from .validate import NO_DUPLICATES, duplicate_warnings, field_issues, validate
from .writer import TEMP_PREFIX, check_not_open, clean_stale_temps

log = logging.getLogger("xlcrm")
PARALLEL_SYNC = 50_000  # records from which sync looks for duplicates in a second process


@dataclass
class SyncResult:
    """What a sync (or `validate --write`, `report`, `promote`) found and did. When its write
    is refused, the job raises `WriteRefused` with this result attached (`error.result`)."""

    report: Report
    filled_ids: list[FilledId] = field(default_factory=list)
    written: bool = False
    backup: Path | None = None
    promotion: Promotion | None = None
    changes: list[Change] = field(default_factory=list)  # logged by this run
    run_id: str | None = None  # the change-log run that stored them
    delivery: Delivery | None = None
    analytics: Analytics | None = None
    pool: Any = None  # pool.Recycling, for sync
    mirror: Any = None  # mirror.MirrorResult, when Settings ask sync to mirror
    mirror_error: str | None = None  # why that mirror failed (retried next run)


def init_workbook(path: Path, lang: Lang = "en", sample: int = 0, force: bool = False,
                  mistakes: bool = True, seed: int = 7, today: dt.date | None = None) -> Path:
    """Create a workbook from the template, optionally with sample records.

    Raises:
        AlreadyExists: `path` exists and `force` is not set.
        NotAWorkbook: `path` does not end in .xlsx or .xlsm.
    """
    if path.suffix.lower() not in WORKBOOK_SUFFIXES:
        raise NotAWorkbook(f"{path.name}: the workbook name must end in .xlsx")
    if path.suffix.lower() == ".xlsm":
        raise NotAWorkbook(f"{path.name}: init writes .xlsx; save it as .xlsm in Excel later")
    clean_stale_temps(path.parent, path.name)  # left by a killed run
    if path.exists() and not force:
        raise AlreadyExists(f"{path} exists already (use --force to overwrite)",
                            zh=f"{path} 已存在（用 --force 覆盖）")
    if path.exists():
        check_not_open(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f"{TEMP_PREFIX}init-{path.name}")  # cleaned like a write's
    copy_template(lang, temp)
    if sample > 0:
        with FileSession(temp, keep_backup=False) as session:
            data = session.read()
            records = sample_rows(sample_records(sample, lang, seed=seed, today=today,
                                                 mistakes=mistakes, settings=data.settings))
            for key, rows in records.items():
                session.append_rows(key, rows)
            session.save()
    temp.replace(path)
    return path


def validate_workbook(path: Path, write: bool = False,
                      today: dt.date | None = None) -> SyncResult:
    """Validate; with `write`, also fill the Issues sheet and mark the bad cells.

    Raises:
        InputError: the workbook cannot be read.
    """
    with FileSession(path) as session:
        return validate_job(session, write=write, today=today)


def validate_job(session: WorkbookSession, write: bool = False,
                 today: dt.date | None = None) -> SyncResult:
    data = session.read()
    result = SyncResult(report=validate(data, today=today))
    if write:
        queue_report(session, data, result.report)
        _save(result, session)
    return result


def sync_workbook(path: Path, today: dt.date | None = None, source: str = "cli") -> SyncResult:
    """The whole job on a workbook file (see `sync_job`). A workbook exactly as the last sync
    of the day left it gets that sync's report back, and nothing is read or written
    (`xlcrm.memo`)."""
    today = today or dt.date.today()
    progress.step("read", name=path.name)
    remembered = memo.recall(path, today)
    if remembered is not None:  # (notifications still waiting make recall say no)
        return SyncResult(report=remembered, delivery=Delivery())
    memo.forget(path)
    with FileSession(path, source) as session:
        result = sync_job(session, today=today)
        if result.run_id and session.sha256:
            memo.remember(path, today, result.run_id, session.sha256, result.report)
    return result


def sync_job(session: WorkbookSession, today: dt.date | None = None) -> SyncResult:
    """The whole job: read, fill blank IDs, log what changed since the last run (and date the
    stage changes), send quiet customers back to the lead pool (when Settings turn it on),
    promote won deals, validate, write back safely, then store the change log and send
    notifications.

    Nothing is logged when the write is refused: the next run finds the same changes.
    """
    today = today or dt.date.today()
    data = session.read()
    filled = fill_blank_ids(data)
    with History(session.path) as history:
        tracker = start_tracking(history, data, session.source, job="sync")
        stage = stage_cells(tracker, today)
        tracker.apply("opportunities", stage, job="stage")
        moves = pool.Moves.of(history) if data.settings.options.pool_enabled else pool.Moves()
        recycling = recycle_step(tracker, moves, today)
        promotion = promote_won_deals(data, today=today)
        apply_promotion(tracker, promotion)
        size = sum(len(s.frame) for s in data.sheets.values())
        with Background(size, checked_elsewhere, data, start_from=PARALLEL_SYNC) as pending:
            # a second process checks each field and finds the duplicates (once, for the
            # warnings and the Duplicates sheet) while this one checks the keys and rules
            # (ambiguous won deals included) and computes the dashboard, which needs only
            # the rules' warnings
            report = validate(data, today=today, duplicates=NO_DUPLICATES, fields=[],
                              extra=non_owner_edits(tracker))
            figures = analyse(data, today=today, report=report,
                              stays=stage_history(history, today, pending=tracker),
                              pool=pool.figures(data, moves, today, recycling.warned))
            fields, found = pending.result()
        report.issues[:0] = fields  # first, as `validate` puts them
        report.extend(duplicate_warnings(data, found))
        result = SyncResult(report=report, filled_ids=filled, promotion=promotion,
                            analytics=figures, pool=recycling)
        queue_ids(session, filled)
        session.set_cells(data.sheets["opportunities"].name, stage)
        session.set_cells(data.sheets["customers"].name, recycling.cells)
        session.set_cells(data.sheets["opportunities"].name, recycling.opportunity_cells)
        queue_promotion(session, promotion)
        queue_report(session, data, report)
        session.fill_sheet(changelog_of(history, tracker))
        session.draw_dashboard(layout(figures, data.lang, today))
        session.fill_sheet(duplicates_sheet(duplicate_sheet_rows(data.sheets, found, data.lang),
                                            data.lang))
        if _save(result, session):
            _commit(result, history, tracker, report, today, session, recycling)
        result.delivery = _deliver(history, data)
    if data.settings.options.mirror_url.strip():
        _mirror_after(result, session, data)
    return result


def _mirror_after(result: SyncResult, session: WorkbookSession, data: WorkbookData) -> None:
    """The mirror Settings ask for, after a sync that wrote (or had nothing to write). It
    never fails the sync: an error is kept in `result.mirror_error`, logged, and marked so
    that the next sync runs in full and mirrors again (`xlcrm.memo`)."""
    from .mirror import mirror_data, resolve_url

    marker = memo.mirror_pending(session.path)
    try:
        fresh = session.read() if result.written else data  # what the file holds now
        result.mirror = mirror_data(fresh, resolve_url(fresh.settings.options.mirror_url,
                                                       session.path))
        marker.unlink(missing_ok=True)
    except Exception as error:  # noqa: BLE001 - a mirror never fails a sync
        result.mirror_error = f"{type(error).__name__}: {error}"
        log.warning("mirror not updated: %s", result.mirror_error)
        with contextlib.suppress(OSError):
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text(result.mirror_error, encoding="utf-8")


def export_workbook(path: Path, target: str, folder: Path | None = None,
                    every_note: bool = False) -> tuple[Any, Path]:
    """`xlcrm export`: see `export_job`."""
    with FileSession(path) as session:
        return export_job(session, target, folder, every_note)


def export_job(session: WorkbookSession, target: str, folder: Path | None = None,
               every_note: bool = False) -> tuple[Any, Path]:
    """Write the files `target` (hubspot, salesforce, zoho, odoo) imports into `folder`
    (default: beside the workbook, ``NAME-target``); returns the export and the folder.
    Writes nothing to the workbook."""
    from . import export

    data = session.read()
    noted = set() if every_note or target != "hubspot" else export.noted_before(session.path)
    result = export.export_data(data, target, noted)
    folder = folder or export.default_folder(session.path, target)
    export.write_export(result, folder)
    if target == "hubspot":
        export.remember_noted(session.path, noted | set(result.noted))
    return result, folder


@dataclass
class Imported:
    """What `import_job` planned and, with `apply`, did."""

    plan: Any  # importer.ImportPlan
    applied: bool = False
    import_id: str | None = None
    backup: Path | None = None


def import_workbook(path: Path, source: Path, sheet: str | None = None,
                    map_file: Path | None = None, apply: bool = False, prefer: str = "none",
                    day_first: bool | None = None, key: str | None = None,
                    origin: str = "cli") -> Imported:
    """`xlcrm import`: see `import_job`."""
    with FileSession(path, origin) as session:
        return import_job(session, source, sheet, map_file, apply, prefer, day_first, key)


def import_job(session: WorkbookSession, source: Path, sheet: str | None = None,
               map_file: Path | None = None, apply: bool = False, prefer: str = "none",
               day_first: bool | None = None, key: str | None = None) -> Imported:
    """Plan the import of `source` into the workbook (`xlcrm.importer`): a dry run that
    writes nothing unless `apply`. Applied, the pending edits are logged first, then the
    import's own changes as job ``import``, and what undo needs is kept in the change log;
    the column mapping is saved for the next import of the same header row.

    Raises:
        InputError: the source cannot be read, or --map / --key names no field.
        BusyError: the workbook is open or changed; nothing was written.
    """
    with collector_paused():
        return _import_job(session, source, sheet, map_file, apply, prefer, day_first, key)


def _import_job(session: WorkbookSession, source: Path, sheet: str | None,
                map_file: Path | None, apply: bool, prefer: str, day_first: bool | None,
                key: str | None) -> Imported:
    from . import importmap
    from .importer import commit_import, plan_import, prepare, queue_import, staged_import
    from .sources import read_source_soon

    table_soon = read_source_soon(source, sheet, known=importmap.is_known)
    data = session.read()  # while the source is read
    progress.step("import")
    prepare(data)
    with contextlib.ExitStack() as stack:
        if apply:  # the user's pending edits are found meanwhile too
            history = stack.enter_context(History(session.path))
            edits = start_tracking(history, data, session.source, job="edits")
        table = table_soon()
        given = importmap.load_map_file(map_file) if map_file else None
        columns = importmap.by_values(importmap.map_headers(
            table.headers, given, importmap.saved_mapping(session.path, table.headers)),
            table.rows)
        plan = plan_import(data, table, columns, prefer, day_first, key)  # type: ignore[arg-type]
        result = Imported(plan)
        if not apply or plan.empty():
            return result
        if edits.changes or edits.snapshot.upsert or edits.snapshot.delete:
            edits.commit()  # the user's pending edits first, as theirs
        # the import is logged from the plan (no second diff of the workbook) and staged in
        # the history by a second process while this one writes; committed with the written
        # file's hash only once the write succeeded
        tracker = edits.follow_on("import", user=os_user())
        size = len(plan.new) + len(plan.changes)
        with Background(size, staged_import, tracker, data, plan, then=commit_import,
                        start_from=PARALLEL_SYNC) as pending:
            undo = queue_import(session, data, plan)
            result.backup = session.save()
            pending.finish((session.sha256, {
                "source": plan.source, "added": [r.record_id for r in plan.new],
                "record": undo}))
        result.import_id = tracker.run.run_id
    result.applied = True
    importmap.save_mapping(session.path, table.headers, columns)
    return result


def undo_import(path: Path, import_id: str, origin: str = "cli") -> tuple[int, int]:
    """Put back every cell an import changed and take out the records it added."""
    with FileSession(path, origin) as session:
        return undo_import_job(session, import_id)


def undo_import_job(session: WorkbookSession, import_id: str) -> tuple[int, int]:
    """See `undo_import`. Returns (cells put back, records taken out).

    Raises:
        InputError: no such import, undone already, or the workbook changed since (undoing
            would overwrite those edits).
    """
    found = _undo_stored(session, import_id, "import", undo_record)
    return len(found["record"]["cells"]), len(found["merged"])


def mirror_workbook(path: Path, url: str | None = None) -> Any:
    """`xlcrm mirror`: the workbook file into the database at `url` (see `mirror_job`)."""
    with FileSession(path) as session:
        return mirror_job(session, url)


def mirror_job(session: WorkbookSession, url: str | None = None) -> Any:
    """Mirror the workbook into `url`, else Settings' `mirror_url`, else the SQLite file
    beside it (`xlcrm.mirror`). Writes nothing to the workbook."""
    from .mirror import mirror_data, resolve_url

    data = session.read()
    result = mirror_data(data, resolve_url(url or data.settings.options.mirror_url,
                                           session.path))
    memo.mirror_pending(session.path).unlink(missing_ok=True)
    return result


def recycle_step(tracker: Tracker, moves: pool.Moves, today: dt.date) -> pool.Recycling:
    """The lead pool's step of a sync: customers past their limit lose their owner (logged as
    job ``pool``), pool markers of customers given an owner by hand are cleared.

    Raises:
        SettingsInvalid: the pool is on, but Customers has no In Pool Since / Pool Reason
            column to record it in.
    """
    data = tracker.data
    recycling = pool.recycle(data, moves, today)
    if recycling.missing:
        names = [schema.CUSTOMERS.field(k).label(data.lang) for k in recycling.missing]
        raise SettingsInvalid(
            f"Settings: pool_enabled is on, but {data.sheets['customers'].name} has no "
            f"column {' / '.join(names)}; add it to the Table (or turn the pool off)",
            zh=f"设置：已开启公海（pool_enabled），但{data.sheets['customers'].name}表没有"
               f"“{'、'.join(names)}”列；请在表格中添加该列（或关闭公海）")
    tracker.apply("customers", recycling.cells, job="pool")
    tracker.apply("opportunities", recycling.opportunity_cells, job="pool")
    return recycling


@dataclass
class ClaimResult:
    person: str
    claimed: list[str]
    refused: list[tuple[str, str, str]]  # (customer id, reason, message)
    lang: Lang = "en"
    backup: Path | None = None


def claim_workbook(path: Path, customer_ids: list[str], person: str,
                   today: dt.date | None = None, source: str = "cli") -> ClaimResult:
    """Take customers from the lead pool (see `claim_job`)."""
    with FileSession(path, source) as session:
        return claim_job(session, customer_ids, person, today)


def claim_job(session: WorkbookSession, customer_ids: list[str], person: str,
              today: dt.date | None = None, rows: list[int] | None = None) -> ClaimResult:
    """Give the named customers in the lead pool to `person` (a name or e-mail in Settings →
    People), within the Settings' limits; the others are refused, each with its reason. The
    claims are logged as job ``claim`` under the person's name. `rows` (the ribbon's
    selection) adds the customers on those Excel rows of the Customers sheet.

    Raises:
        InputError: `person` is not an active person in Settings → People.
        WriteRefused: the workbook is open or changed; nothing was written.
    """
    at = None
    if today is not None:  # the claim is dated the day asked for (the limits count days)
        at = dt.datetime.combine(today, dt.datetime.now().time()).astimezone()
    today = today or dt.date.today()
    data = session.read()
    who = data.settings.person(person)
    if who is None or not who.active:
        raise UnknownPerson(f"{person} is not an active person in Settings → People",
                            zh=f"{person} 不是“设置 → 人员”中的在职人员")
    filled = fill_blank_ids(data)
    if rows:
        frame = data.sheets["customers"].frame
        chosen = frame[frame[ROW].isin(rows)]["customer_id"]
        customer_ids = [*customer_ids, *(nz.text(v) for v in chosen if not nz.is_blank(v))]
    with History(session.path) as history:
        moves = pool.Moves.of(history)
        claim = pool.claim(data, moves, customer_ids, who, today)
        result = ClaimResult(who.name, claim.claimed, claim.refused, data.lang)
        if not claim.cells:
            return result
        tracker = start_tracking(history, data, session.source, job="claim", at=at)
        tracker.apply("customers", claim.cells, job="claim", user=who.name)
        queue_ids(session, filled)
        session.set_cells(data.sheets["customers"].name, claim.cells)
        session.fill_sheet(changelog_of(history, tracker))
        result.backup = session.save()
        tracker.commit(session.sha256)
    return result


def promote_workbook(path: Path, today: dt.date | None = None, source: str = "cli"
                     ) -> SyncResult:
    """Move won deals into Customers and recompute roll-ups; writes only when something changes.
    """
    with FileSession(path, source) as session:
        return promote_job(session, today=today)


def promote_job(session: WorkbookSession, today: dt.date | None = None) -> SyncResult:
    data = session.read()
    filled = fill_blank_ids(data)  # a won deal links to a customer whose ID was still blank
    with History(session.path) as history:
        tracker = start_tracking(history, data, session.source, job="promote")
        promotion = promote_won_deals(data, today=today)
        apply_promotion(tracker, promotion)
        result = SyncResult(report=Report(workbook=session.path.name, counts=data.counts(),
                                          lang=data.lang, issues=list(promotion.issues)),
                            promotion=promotion, filled_ids=filled)
        if promotion.changes:
            queue_ids(session, filled)
            queue_promotion(session, promotion)
            session.fill_sheet(changelog_of(history, tracker))
            if _save(result, session):
                result.changes = tracker.changes
                tracker.commit(session.sha256)
    return result


def apply_promotion(tracker: Tracker, promotion: Promotion) -> None:
    """Log promotion's changes and make them visible to the steps after it."""
    names = {s.name: key for key, s in tracker.data.sheets.items()}
    for sheet, cells in promotion.cells.items():
        tracker.apply(names[sheet], cells, job="promote")
    tracker.apply("customers", rows=promotion.new_customers, job="promote")
    tracker.apply("interactions", rows=promotion.new_interactions, job="promote")


def changelog_of(history: History, tracker: Tracker) -> Any:
    """The ChangeLog sheet: this run's changes and the stored ones, newest first."""
    data = tracker.data
    entries = newest_entries(history, tracker, data.settings.options.changelog_rows)
    names = {key: sheet.name for key, sheet in data.sheets.items()}
    return changelog_sheet(entries, data.lang, names)


def _commit(result: SyncResult, history: History, tracker: Tracker, report: Report,
            today: dt.date, session: WorkbookSession,
            recycling: pool.Recycling | None = None) -> None:
    """Store the run's changes; queue its notifications (which must never fail the run)."""
    tracker.commit(session.sha256)
    result.changes = tracker.changes
    result.run_id = tracker.run.run_id
    try:
        found = notify.events(tracker, report, tracker.data.settings, today, recycling)
        notify.queue(history, found, tracker.data)
    except Exception as error:  # noqa: BLE001 - notifications never fail a sync
        log.warning("notifications not queued: %s: %s", type(error).__name__, error)


def _deliver(history: History, data: WorkbookData) -> Delivery:
    try:
        return notify.deliver(history, data.settings.options)
    except Exception as error:  # noqa: BLE001 - notifications never fail a sync
        log.warning("notifications not delivered: %s: %s", type(error).__name__, error)
        return Delivery(errors=[str(error)])


@dataclass
class Restored:
    sheet: str  # the sheet's real name
    record_id: str
    row_added: bool  # the record was deleted and is back as a new row
    fields: list[str]  # fields set (when the record existed)
    backup: Path | None


def restore_record(path: Path, record_id: str, at: dt.datetime | None = None,
                   source: str = "cli") -> Restored:
    """Bring back a deleted record (see `restore_job`)."""
    with FileSession(path, source) as session:
        return restore_job(session, record_id, at)


def restore_job(session: WorkbookSession, record_id: str, at: dt.datetime | None = None
                ) -> Restored:
    """Bring back a deleted record (as it was just before it was deleted, or at `at`), or set
    an existing record's values back to what they were at `at`. Logged like any change.

    Raises:
        InputError: no history, or the record did not exist then.
        BusyError: the workbook is open or changed; nothing was written.
    """
    data = session.read()
    filled = fill_blank_ids(data)
    with History(session.path, create=False) as history:
        found = values_at(history, record_id, at)
        if found is None:
            when = f" at {at.astimezone():%Y-%m-%d %H:%M:%S}" if at else ""
            what = "existed" if at else "was deleted"
            raise RecordNotFound(f"{record_id}: the change log has no record that {what}{when}")
        key, values = found
        sheet = data.sheets[key]
        sdef = schema.SHEETS_BY_KEY[key]
        assert sdef.id_field
        tracker = start_tracking(history, data, session.source, job="restore")
        ids = sheet.frame[sdef.id_field].map(nz.record_id)
        present = sheet.frame.index[ids == nz.record_id(record_id)]
        queue_ids(session, filled)
        fields: list[str] = []
        if len(present):
            if at is None:
                raise RecordNotFound(f"{record_id} is in {sheet.name}; give --at TIME to set "
                                     "its values back to what they were then")
            index = present[0]
            current = record_values(sheet.frame.loc[index, tracked_columns(sheet.frame)]
                                    .tolist(), tracked_columns(sheet.frame))
            row = int(sheet.frame.at[index, ROW])
            cells = []
            for name in sorted(set(current) | set(values)):
                if name in sheet.columns and current.get(name) != values.get(name):
                    cells.append((row, sheet.columns[name], cell_value(values.get(name))))
                    fields.append(name)
            tracker.apply(key, cells, job="restore", user=os_user())
            session.set_cells(sheet.name, cells)
        else:
            record = {k: cell_value(v) for k, v in values.items() if k in sheet.columns}
            tracker.apply(key, rows=[record], job="restore", user=os_user())
            session.append_rows(key, [record])
        session.fill_sheet(changelog_of(history, tracker))
        backup = session.save()
        tracker.commit(session.sha256)
    return Restored(sheet.name, record_id, not len(present), fields, backup)


def report_workbook(path: Path, write: bool = True, today: dt.date | None = None) -> SyncResult:
    """The analytics of a workbook (see `report_job`)."""
    with FileSession(path) as session:
        return report_job(session, write=write, today=today)


def report_job(session: WorkbookSession, write: bool = True, today: dt.date | None = None
               ) -> SyncResult:
    """The analytics of a workbook; with `write`, also rebuild its Dashboard sheet (nothing
    else is written). The stage history is used when the workbook has one."""
    today = today or dt.date.today()
    data = session.read()
    report = validate(data, today=today)
    stays, moves = None, pool.Moves()
    if history_path(session.path).exists():
        with History(session.path, create=False) as history:
            stays = stage_history(history, today)
            if data.settings.options.pool_enabled:
                moves = pool.Moves.of(history)
    figures = analyse(data, today=today, report=report, stays=stays,
                      pool=pool.figures(data, moves, today))
    result = SyncResult(report=report, analytics=figures)
    if write:
        session.draw_dashboard(layout(figures, data.lang, today))
        _save(result, session)
    return result


@dataclass
class DedupeResult:
    clusters: list[dict[str, Any]]
    written: bool = False
    lang: Lang = "en"
    groups: int = 0  # clusters in every data sheet


def dedupe_workbook(path: Path, threshold: float | None = None, write: bool = False,
                    sheet_key: str = "customers") -> DedupeResult:
    """Find duplicates (see `dedupe_job`)."""
    with FileSession(path) as session:
        return dedupe_job(session, threshold, write, sheet_key)


def dedupe_job(session: WorkbookSession, threshold: float | None = None, write: bool = False,
               sheet_key: str = "customers") -> DedupeResult:
    """Find duplicates in one sheet; with `write`, fill the Duplicates sheet (all sheets)."""
    data = session.read()
    options = data.settings.options
    limit = options.duplicate_threshold if threshold is None else threshold
    found = all_duplicates(data.sheets, options.phone_region, limit,
                           data.settings.closed_stages())
    sheet = data.sheets[sheet_key]
    result = DedupeResult(clusters_json(sheet.frame, sheet.name, found[sheet_key],
                                        ID_FIELDS[sheet_key], data.lang), lang=data.lang,
                          groups=sum(len(m) for m in found.values()))
    if write:
        session.fill_sheet(duplicates_sheet(duplicate_sheet_rows(data.sheets, found, data.lang),
                                            data.lang))
        try:
            result.written = session.save() is not None
        except WriteRefused as error:
            error.result = result
            raise
    return result


@dataclass
class Merged:
    merge_id: str
    survivors: list[str]
    merged: list[str]
    backup: Path | None


def merge_duplicates(path: Path, cluster: int | None = None, threshold: float | None = None,
                     source: str = "cli") -> Merged:
    """Merge duplicate customers (see `merge_job`)."""
    with FileSession(path, source) as session:
        return merge_job(session, cluster, threshold)


def merge_job(session: WorkbookSession, cluster: int | None = None,
              threshold: float | None = None) -> Merged:
    """Merge one cluster (its 1-based number in `dedupe` output) or, with `cluster` None, all.

    Raises:
        InputError: no such cluster, or nothing to merge.
        BusyError: the workbook is open or changed; nothing was written.
        UnsafeToWrite: the rows to remove cannot be moved safely; nothing was written.
    """
    data = session.read()
    filled = fill_blank_ids(data)  # merged records are named and restored by their IDs
    sheet = data.sheets["customers"]
    options = data.settings.options
    limit = options.duplicate_threshold if threshold is None else threshold
    matches = find_duplicate_customers(sheet.frame, options.phone_region, limit)
    if cluster is not None:
        if not 1 <= cluster <= len(matches):
            raise RecordNotFound(f"no cluster {cluster} (there are {len(matches)}; see "
                                 "xlcrm dedupe)")
        matches = [matches[cluster - 1]]
    if not matches:
        raise RecordNotFound("no duplicate customers to merge")
    plans = [plan_merge(data, m.indices) for m in matches]
    with History(session.path) as history:
        start_tracking(history, data, session.source, job="dedupe").commit()  # edits first
        queue_ids(session, filled)
        undo = apply_merge(session, data, plans)
        backup = session.save()
        after = session.read()
        tracker = start_tracking(history, after, session.source, job="merge", user=os_user())
        tracker.commit(session.sha256)
        merge_id = tracker.run.run_id
        history.save_merge(merge_id, tracker.run.at, tracker.run.user,
                           [p.survivor for p in plans], [r for p in plans for r in p.merged],
                           undo, session.sha256 or "")
    return Merged(merge_id, [p.survivor for p in plans], [r for p in plans for r in p.merged],
                  backup)


def undo_merge(path: Path, merge_id: str, source: str = "cli") -> list[str]:
    """Put back everything a merge changed (see `undo_merge_job`)."""
    with FileSession(path, source) as session:
        return undo_merge_job(session, merge_id)


def undo_merge_job(session: WorkbookSession, merge_id: str) -> list[str]:
    """Put back everything a merge changed. Returns the record IDs restored.

    Raises:
        InputError: no such merge, undone already, or the workbook changed since.
        BusyError: the workbook is open; nothing was written.
    """
    found = _undo_stored(session, merge_id, "merge", undo_record, " (restore single records "
                         "with xlcrm restore instead)")
    return list(found["merged"])


def _undo_stored(session: WorkbookSession, run_id: str, what: str, queue: Any,
                 hint: str = "") -> dict[str, Any]:
    """Undo a stored merge or import (`what`) with `queue(session, record)`, after checking
    it exists, is not undone yet and the workbook is as it left it; logs the undo as job
    ``undo-<what>``. Returns what was stored."""
    session.read()
    with History(session.path, create=False) as history:
        found = history.load_merge(run_id)
        if found is None or found["record"].get("kind", "merge") != what:
            raise RecordNotFound(f"no {what} {run_id} in the change log",
                                 zh=f"变更日志中没有{_WHAT_ZH[what]} {run_id}")
        if found["undone_at"]:
            raise RecordNotFound(f"{what} {run_id} was undone already",
                                 zh=f"{_WHAT_ZH[what]} {run_id} 已撤销过")
        if found["sha_after"] != session.sha256:
            raise UnsafeToWrite(f"{session.path.name} changed since {what} {run_id}; undoing "
                                f"it would overwrite those changes{hint}",
                                zh=f"{session.path.name} 在{_WHAT_ZH[what]} {run_id} 之后被修改过；"
                                   "撤销会覆盖这些修改")
        queue(session, found["record"])
        session.save()
        after = session.read()
        tracker = start_tracking(history, after, session.source, job=f"undo-{what}",
                                 user=os_user())
        tracker.commit(session.sha256)
        history.mark_undone(run_id, tracker.run.at)
    return found


_WHAT_ZH = {"merge": "合并", "import": "导入"}


def checked_elsewhere(data: WorkbookData) -> tuple[list[Issue], dict[str, Any]]:
    """What sync's second process computes: the field checks and the duplicate clusters."""
    return field_issues(data), duplicates_found(data)


def duplicates_found(data: WorkbookData) -> dict[str, Any]:
    """The duplicate clusters of every data sheet, as Settings asks for them."""
    options = data.settings.options
    return all_duplicates(data.sheets, options.phone_region, options.duplicate_threshold,
                          data.settings.closed_stages())


def change_log(path: Path, record: str | None = None, field_name: str | None = None,
               user: str | None = None, since: dt.datetime | None = None,
               limit: int | None = None) -> list[dict[str, Any]]:
    """Stored changes, oldest first, filtered. `field_name` may be a key or a header in
    either language."""
    with History(path, create=False) as history:
        key = schema.field_key(field_name) if field_name else None
        return history.entries(record=record, field=key, user=user, since=since, limit=limit)


def changelog_job(session: WorkbookSession) -> int:
    """Log what changed since the last run and show the ChangeLog sheet; returns how many
    changes were logged. Unnumbered rows are left to sync."""
    data = session.read()
    fill_blank_ids(data)
    with History(session.path) as history:
        tracker = start_tracking(history, data, session.source, job="changelog")
        session.fill_sheet(changelog_of(history, tracker))
        session.save()
        tracker.commit(session.sha256)
        return len(tracker.changes)


def verify_log(path: Path) -> list[str]:
    """Problems in the change log's hash chain (empty when intact)."""
    with History(path, create=False) as history:
        return history.verify()


def queue_promotion(session: WorkbookSession, promotion: Promotion) -> None:
    for sheet, cells in promotion.cells.items():
        session.set_cells(sheet, cells)
    session.append_rows("customers", promotion.new_customers)
    session.append_rows("interactions", promotion.new_interactions)


def _save(result: SyncResult, session: WorkbookSession) -> bool:
    """Save; a refusal is raised with `result` attached. True when saved (or nothing needed
    saving)."""
    try:
        result.backup = session.save()
    except WriteRefused as error:
        error.result = result
        raise
    result.written = result.backup is not None
    return True


def queue_report(session: WorkbookSession, data: WorkbookData, report: Report) -> None:
    session.fill_sheet(issues_sheet(report, data.lang))
    session.mark(report)


def queue_ids(session: WorkbookSession, filled: list[FilledId]) -> None:
    by_sheet: dict[str, list[tuple[int, int, str]]] = {}
    for f in filled:
        by_sheet.setdefault(f.sheet, []).append((f.row, f.column, f.value))
    for sheet, cells in by_sheet.items():
        session.set_cells(sheet, cells)


@dataclass
class DemoResult:
    folder: Path
    workbooks: dict[Lang, SyncResult]


def run_demo(folder: Path, sample: int = 40, today: dt.date | None = None) -> DemoResult:
    """Create one Chinese and one English sample workbook in `folder` and sync both."""
    folder.mkdir(parents=True, exist_ok=True)
    results: dict[Lang, SyncResult] = {}
    for lang in schema.LANGS:
        path = folder / f"crm_{lang}.xlsx"
        init_workbook(path, lang=lang, sample=sample, force=True, today=today)
        results[lang] = sync_workbook(path, today=today)
    return DemoResult(folder=folder, workbooks=results)
