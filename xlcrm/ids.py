"""Record IDs: fill the blank ones with the next free number under the Settings prefix."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from . import normalize as nz
from . import schema
from .reader import ROW, WorkbookData


@dataclass(frozen=True)
class FilledId:
    sheet: str  # the sheet's real name
    row: int
    column: int
    value: str


def id_minter(data: WorkbookData, sheet_key: str, also: Iterable[Any] = ()) -> Iterator[str]:
    """New IDs for a sheet: the prefix from Settings and the numbers after the highest in use
    in the sheet or in `also` (IDs about to be written beside them, such as an import's
    records that bring their own); looked for when the first ID is asked for: a job that
    mints none pays nothing."""
    sdef = schema.SHEETS_BY_KEY[sheet_key]
    assert sdef.id_field and sdef.id_option
    options = data.settings.options
    prefix = str(getattr(options, sdef.id_option))
    pattern = re.compile(rf"^{re.escape(prefix)}(\d+)$", re.IGNORECASE)
    column = data.sheets[sheet_key].frame[sdef.id_field]
    used = [int(m.group(1)) for v in itertools.chain(column, also) if not nz.is_blank(v)
            if (m := pattern.match(nz.text(v)))]
    for number in itertools.count(max(used, default=0) + 1):
        yield f"{prefix}{number:0{options.id_digits}d}"


def fill_blank_ids(data: WorkbookData) -> list[FilledId]:
    """Give every record without an ID a new one, in the frames and as cells to write.

    New numbers continue after the highest number already used with the same prefix, so
    IDs are never reused while their records exist.
    """
    filled: list[FilledId] = []
    for sdef in schema.DATA_SHEETS:
        assert sdef.id_field
        sheet = data.sheets[sdef.key]
        blank = sheet.frame[sdef.id_field].map(nz.is_blank).astype(bool)
        if not blank.any():
            continue
        mint = id_minter(data, sdef.key)
        excel_column = sheet.columns[sdef.id_field]
        for index in sheet.frame.index[blank]:
            value = next(mint)
            sheet.frame.at[index, sdef.id_field] = value
            filled.append(FilledId(sheet.name, int(sheet.frame.at[index, ROW]), excel_column,
                                   value))
    return filled
