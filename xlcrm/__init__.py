"""xlcrm: a spreadsheet-native CRM engine. The public API is the names in `__all__`.

The jobs come in two forms: `sync_workbook(path)` and friends run on a workbook file, and
`sync_job(session)` and friends run on any `WorkbookSession` (`FileSession` for a file,
`ExcelSession` for the workbook open in Excel). Every job returns a result type; problems in
the workbook are data (`Report`, `Issue`, `Code`); anything that stops a job is an
`XlcrmError` (see `xlcrm.errors` for the tree and the exit codes). A refused write raises a
`WriteRefused` with the job's result attached.

Names are imported on first use, so ``import xlcrm`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .analytics import Analytics
    from .errors import (
        AddinError,
        AlreadyExists,
        AlreadyWatching,
        BadDatabaseUrl,
        BusyError,
        CorruptWorkbook,
        EncryptedWorkbook,
        HistoryUnreadable,
        HostileWorkbook,
        InputError,
        MirrorUnavailable,
        NotAWorkbook,
        RecordNotFound,
        SettingsInvalid,
        SheetMissing,
        UnknownPerson,
        UnsafeToWrite,
        WorkbookChanged,
        WorkbookNotFound,
        WorkbookOpen,
        WriteDenied,
        WriteRefused,
        XlcrmError,
    )
    from .excel import ExcelSession, XlBook
    from .export import Export
    from .issues import Code, Issue, Report
    from .jobs import (
        ClaimResult,
        DedupeResult,
        DemoResult,
        Merged,
        Restored,
        SyncResult,
        change_log,
        changelog_job,
        claim_job,
        claim_workbook,
        dedupe_job,
        dedupe_workbook,
        export_job,
        export_workbook,
        init_workbook,
        merge_duplicates,
        merge_job,
        mirror_job,
        mirror_workbook,
        promote_job,
        promote_workbook,
        report_job,
        report_workbook,
        restore_job,
        restore_record,
        run_demo,
        sync_job,
        sync_workbook,
        undo_merge,
        undo_merge_job,
        validate_job,
        validate_workbook,
        verify_log,
    )
    from .mirror import MirrorResult
    from .promote import Promotion
    from .reader import WorkbookData, read_workbook
    from .session import FileSession, WorkbookSession

__all__ = [
    "AddinError",
    "AlreadyExists",
    "AlreadyWatching",
    "Analytics",
    "BadDatabaseUrl",
    "BusyError",
    "ClaimResult",
    "Code",
    "CorruptWorkbook",
    "DedupeResult",
    "DemoResult",
    "EncryptedWorkbook",
    "ExcelSession",
    "Export",
    "FileSession",
    "HistoryUnreadable",
    "HostileWorkbook",
    "InputError",
    "Issue",
    "Merged",
    "MirrorResult",
    "MirrorUnavailable",
    "NotAWorkbook",
    "Promotion",
    "RecordNotFound",
    "Report",
    "Restored",
    "SettingsInvalid",
    "SheetMissing",
    "SyncResult",
    "UnknownPerson",
    "UnsafeToWrite",
    "WorkbookChanged",
    "WorkbookData",
    "WorkbookNotFound",
    "WorkbookOpen",
    "WorkbookSession",
    "WriteDenied",
    "WriteRefused",
    "XlBook",
    "XlcrmError",
    "change_log",
    "changelog_job",
    "claim_job",
    "claim_workbook",
    "dedupe_job",
    "dedupe_workbook",
    "export_job",
    "export_workbook",
    "init_workbook",
    "merge_duplicates",
    "merge_job",
    "mirror_job",
    "mirror_workbook",
    "promote_job",
    "promote_workbook",
    "read_workbook",
    "report_job",
    "report_workbook",
    "restore_job",
    "restore_record",
    "run_demo",
    "sync_job",
    "sync_workbook",
    "undo_merge",
    "undo_merge_job",
    "validate_job",
    "validate_workbook",
    "verify_log",
]

_HOMES: dict[str, tuple[str, ...]] = {
    "analytics": ("Analytics",),
    "errors": ("AddinError", "AlreadyExists", "AlreadyWatching", "BadDatabaseUrl", "BusyError",
               "CorruptWorkbook", "MirrorUnavailable",
               "EncryptedWorkbook", "HistoryUnreadable", "HostileWorkbook", "InputError",
               "NotAWorkbook", "RecordNotFound", "SettingsInvalid", "SheetMissing",
               "UnknownPerson", "UnsafeToWrite", "WorkbookChanged", "WorkbookNotFound",
               "WorkbookOpen", "WriteDenied", "WriteRefused", "XlcrmError"),
    "excel": ("ExcelSession", "XlBook"),
    "export": ("Export",),
    "issues": ("Code", "Issue", "Report"),
    "jobs": ("ClaimResult", "DedupeResult", "DemoResult", "Merged", "Restored", "SyncResult",
             "change_log", "changelog_job", "claim_job", "claim_workbook", "dedupe_job",
             "dedupe_workbook", "export_job", "export_workbook", "init_workbook",
             "merge_duplicates", "merge_job", "mirror_job", "mirror_workbook", "promote_job",
             "promote_workbook", "report_job", "report_workbook", "restore_job", "restore_record",
             "run_demo", "sync_job", "sync_workbook", "undo_merge", "undo_merge_job",
             "validate_job", "validate_workbook", "verify_log"),
    "mirror": ("MirrorResult",),
    "promote": ("Promotion",),
    "reader": ("WorkbookData", "read_workbook"),
    "session": ("FileSession", "WorkbookSession"),
}
_HOME_OF = {name: module for module, names in _HOMES.items() for name in names}


def __getattr__(name: str) -> Any:
    if name not in _HOME_OF:
        raise AttributeError(f"module 'xlcrm' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_HOME_OF[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
