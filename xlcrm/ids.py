"""Record IDs: fill the blank ones with the next free number under the Settings prefix."""

from __future__ import annotations

import re
from dataclasses import dataclass

from . import normalize as nz
from . import schema
from .reader import ROW, WorkbookData


@dataclass(frozen=True)
class FilledId:
    sheet: str  # the sheet's real name
    row: int
    column: int
    value: str


def fill_blank_ids(data: WorkbookData) -> list[FilledId]:
    """Give every record without an ID a new one, in the frames and as cells to write.

    New numbers continue after the highest number already used with the same prefix, so
    IDs are never reused while their records exist.
    """
    filled: list[FilledId] = []
    options = data.settings.options
    for sdef in schema.DATA_SHEETS:
        sheet = data.sheets[sdef.key]
        assert sdef.id_field and sdef.id_option
        prefix = str(getattr(options, sdef.id_option))
        column = sheet.frame[sdef.id_field]
        blank = column.map(nz.is_blank).astype(bool)
        if not blank.any():
            continue
        pattern = re.compile(rf"^{re.escape(prefix)}(\d+)$", re.IGNORECASE)
        used = [int(m.group(1)) for v in column[~blank] if (m := pattern.match(nz.text(v)))]
        next_number = max(used, default=0) + 1
        excel_column = sheet.columns[sdef.id_field]
        for index in column.index[blank]:
            value = f"{prefix}{next_number:0{options.id_digits}d}"
            next_number += 1
            sheet.frame.at[index, sdef.id_field] = value
            filled.append(FilledId(sheet.name, int(sheet.frame.at[index, ROW]), excel_column,
                                   value))
    return filled
