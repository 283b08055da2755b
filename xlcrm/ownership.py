"""Edits to another owner's records: `edit-by-non-owner` warnings (Settings `edit_policy`).

Who made a run's edits is the change log's author: the workbook's last-modified-by, else the
user in its owner file, else the OS user (`xlcrm.changes.workbook_user`). The author is
matched to Settings → People by name or e-mail. A record changed or deleted by someone who is
not its owner gets one warning naming who and what (the owner is the one the record had before
the edit, so taking over someone's customer by typing one's own name is seen too); managers
are exempt, and so is the owner. An author that is not in People is reported as such, never
guessed. The owner is told through the notification rule `edit-by-non-owner`; contact-data
changes also notify the owner and the service owner through `contact-changed`, whoever made
them.
"""

from __future__ import annotations

from typing import Any

from openpyxl.utils import get_column_letter

from . import normalize as nz
from . import schema
from .changes import Tracker
from .issues import Code, Issue, make_message
from .messages import t
from .reader import ROW
from .schema import normalize_value


def non_owner_edits(tracker: Tracker) -> list[Issue]:
    """The run's warnings (none on the first run, with `edit_policy` off, or for a manager)."""
    data = tracker.data
    settings, lang = data.settings, data.lang
    if settings.options.edit_policy == "off" or tracker.baseline:
        return []
    author = tracker.run.user or ""
    person = settings.person(author)
    if person is not None and person.role == "manager":
        return []
    who = person.name if person else t("author_unknown", lang, author=author)
    me = normalize_value(person.name if person else author)
    grouped: dict[tuple[str, str], list[Any]] = {}
    for change in tracker.user_changes:
        if change.action in ("changed", "deleted") and change.sheet in data.sheets:
            grouped.setdefault((change.sheet, change.record_id), []).append(change)
    issues = []
    positions: dict[str, dict[str, int]] = {}
    for (key, rid), changes in grouped.items():
        sheet = data.sheets[key]
        if "owner" not in sheet.frame:
            continue
        if key not in positions:  # record id -> position, once per sheet
            ids = nz.map_unique(sheet.frame[schema.SHEETS_BY_KEY[key].id_field or ""],
                                nz.record_id, "")
            positions[key] = {rid: i for i, rid in enumerate(ids) if rid}
        at = positions[key].get(nz.record_id(rid))
        record = None if at is None else sheet.frame.iloc[at].to_dict()
        deleted = next((c for c in changes if c.action == "deleted"), None)
        if deleted is not None:
            owner = (deleted.old or {}).get("owner")
        else:
            moved = next((c for c in changes if c.field == "owner"), None)
            owner = moved.old if moved is not None else (record or {}).get("owner")
        if nz.is_blank(owner) or normalize_value(owner) == me:
            continue
        label = sheet.name
        if deleted is not None:
            what = t("edit_deleted", lang, sheet=label, id=rid)
            row = cell = field = None
        else:
            names = [c.field for c in changes if c.field]
            fields = ("、" if lang == "zh" else ", ").join(
                schema.field_label(key, name, lang) for name in names)
            what = t("edit_changed", lang, fields=fields, sheet=label, id=rid)
            field = names[0] if names else None
            row = int(record[ROW]) if record is not None else None
            column = sheet.columns.get(field or "")
            cell = f"{get_column_letter(column)}{row}" if column and row else None
        issues.append(Issue(code=Code.EDIT_BY_NON_OWNER, sheet=sheet.name, row=row, cell=cell,
                            field=field, record_id=rid, value=nz.text(owner),
                            message=make_message(Code.EDIT_BY_NON_OWNER, lang, who=who,
                                                 what=what, value=nz.text(owner)),
                            severity="warning"))
    return issues

