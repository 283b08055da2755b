"""The errors that stop a run. Problems *in* a workbook are data (see ``xlcrm.issues``).

Every exception here means "cannot go on"; each carries the exit code the CLI uses and a
one-line message in English and, where the raiser gave one, Chinese (the docstring is the
default message). Anything else that escapes a job is a bug: exit 70 (sysexits' EX_SOFTWARE)
with a crash log, see `xlcrm.crash`::

    XlcrmError
     ├── InputError                  exit 2: bad input or usage, nothing was written
     │    ├── WorkbookNotFound
     │    ├── NotAWorkbook           not an .xlsx/.xlsm zip at all
     │    ├── CorruptWorkbook        a zip, but broken or unreadable
     │    ├── EncryptedWorkbook      password-protected (or a legacy .xls)
     │    ├── HostileWorkbook        zip bomb, XML entity tricks, ...
     │    ├── SheetMissing           a data sheet or a key column is missing
     │    ├── SettingsInvalid        the Settings sheet holds a value we cannot use
     │    ├── AlreadyExists          `init` would overwrite a file
     │    ├── HistoryUnreadable      the change-log database cannot be read
     │    ├── RecordNotFound         `restore` finds no such record in the change log
     │    ├── UnknownPerson          `claim --as` names nobody active in Settings → People
     │    ├── AddinError             the Excel add-in cannot be built or installed
     │    └── BadDatabaseUrl         `mirror` was given a database address it cannot use
     ├── AlreadyWatching             exit 3: another watcher already watches this folder
     ├── MirrorUnavailable           exit 69 (EX_UNAVAILABLE): the mirror's database cannot be
     │                               reached or refused the load; nothing was changed in it
     └── WriteRefused                the one channel for a write that did not happen: nothing
          │                          was written; `.result` holds what the job found anyway
          ├── BusyError              exit 3: the workbook is busy
          │    ├── WorkbookOpen      an Excel ~$ / LibreOffice .~lock owner file exists
          │    └── WorkbookChanged   the file changed since we read it
          ├── UnsafeToWrite          exit 2: the change cannot be patched safely (a formula or
          │                          merged cells across rows that would move), or it would
          │                          lose a part of the workbook
          └── WriteDenied            exit 77 (EX_NOPERM): the system will not let us replace
                                     the workbook (read-only file or folder, no rights)

A job whose write is refused raises the refusal with its result attached (`error.result`: the
report, the analytics...), so a caller shows what was found and says why nothing was written.
"""

from __future__ import annotations

EXIT_BUG = 70  # sysexits EX_SOFTWARE: an internal error
EXIT_DENIED = 77  # sysexits EX_NOPERM
EXIT_UNAVAILABLE = 69  # sysexits EX_UNAVAILABLE


class XlcrmError(Exception):
    """xlcrm could not go on."""

    exit_code = 2

    def __init__(self, message: str | None = None, zh: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())
        self.zh = zh

    def text(self, lang: str) -> str:
        """The message in `lang` (English where no Chinese was given)."""
        return self.zh if lang == "zh" and self.zh else str(self)


class InputError(XlcrmError):
    """Bad input."""

    exit_code = 2


class WorkbookNotFound(InputError):
    """No such workbook."""


class NotAWorkbook(InputError):
    """Not an Excel workbook (.xlsx or .xlsm)."""


class CorruptWorkbook(InputError):
    """The workbook is damaged and cannot be read."""


class EncryptedWorkbook(InputError):
    """The workbook is password-protected (or an old .xls file); save it as .xlsx without a password."""  # noqa: E501


class HostileWorkbook(InputError):
    """The workbook looks malicious (zip bomb or XML entity expansion) and was not opened."""


class SheetMissing(InputError):
    """A required sheet or column is missing."""


class SettingsInvalid(InputError):
    """The Settings sheet holds a value xlcrm cannot use."""


class WriteRefused(XlcrmError):
    """The workbook was not written."""

    exit_code = 2
    result: object = None  # what the job found before its write was refused


class UnsafeToWrite(WriteRefused):
    """This change cannot be written safely, so nothing was written."""


class AlreadyExists(InputError):
    """The file exists already (use --force to overwrite)."""


class BusyError(WriteRefused):
    """The workbook is busy; nothing was written."""

    exit_code = 3


class WorkbookOpen(BusyError):
    """The workbook is open for editing elsewhere; nothing was written."""


class WorkbookChanged(BusyError):
    """The workbook changed while xlcrm was working; nothing was written."""


class RecordNotFound(InputError):
    """The change log has no such record"""


class UnknownPerson(InputError):
    """Not an active person in Settings → People"""


class HistoryUnreadable(InputError):
    """The change-log database cannot be read"""


class AddinError(InputError):
    """The add-in cannot be built or installed"""


class BadDatabaseUrl(InputError):
    """Not a database address xlcrm can mirror into (a SQLite path or postgresql://...)"""


class MirrorUnavailable(XlcrmError):
    """The mirror's database cannot be reached or refused the load; nothing was changed in it"""

    exit_code = EXIT_UNAVAILABLE


class AlreadyWatching(XlcrmError):
    """Another watcher already watches this folder"""

    exit_code = 3


class WriteDenied(WriteRefused):
    """The system does not allow xlcrm to replace the workbook; nothing was written."""

    exit_code = EXIT_DENIED
