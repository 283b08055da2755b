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
     │    ├── UnsafeToWrite          a write would drop parts of the workbook
     │    ├── AlreadyExists          `init` would overwrite a file
     │    ├── HistoryUnreadable      the change-log database cannot be read (xlcrm.history)
     │    └── RecordNotFound         `restore` finds no such record in the change log
     ├── BusyError                   exit 3: the workbook is busy, nothing was written
     │    ├── WorkbookOpen           an Excel ~$ / LibreOffice .~lock owner file exists
     │    └── WorkbookChanged        the file changed since we read it
     └── WriteDenied                 exit 77 (EX_NOPERM): the system will not let us replace
                                     the workbook (read-only file or folder, no rights)
"""

from __future__ import annotations

EXIT_BUG = 70  # sysexits EX_SOFTWARE: an internal error
EXIT_DENIED = 77  # sysexits EX_NOPERM


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


class UnsafeToWrite(InputError):
    """Writing this workbook would drop parts of it, so nothing was written."""


class AlreadyExists(InputError):
    """The file exists already (use --force to overwrite)."""


class BusyError(XlcrmError):
    """The workbook is busy; nothing was written."""

    exit_code = 3


class WorkbookOpen(BusyError):
    """The workbook is open for editing elsewhere; nothing was written."""


class WorkbookChanged(BusyError):
    """The workbook changed while xlcrm was working; nothing was written."""


class RecordNotFound(InputError):
    """The change log has no such record"""


class WriteDenied(XlcrmError):
    """The system does not allow xlcrm to replace the workbook; nothing was written."""

    exit_code = EXIT_DENIED
