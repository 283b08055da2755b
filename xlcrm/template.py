"""Builds the workbook templates (English and Chinese) from the schema.

`python -m xlcrm.template` rebuilds ``workbook_templates/``; a test checks that the committed
files equal a fresh build, part by part.
"""

from __future__ import annotations

import datetime as dt
import io
import re
import shutil
import zipfile
from pathlib import Path
from typing import Any

from openpyxl import Workbook
from openpyxl.comments import Comment
from openpyxl.styles import Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.workbook.defined_name import DefinedName
from openpyxl.worksheet.datavalidation import DataValidation
from openpyxl.worksheet.table import Table, TableStyleInfo
from openpyxl.worksheet.worksheet import Worksheet

from . import schema
from .schema import LANGS, Field, Lang, SheetDef
from .settings import OPTION_DESCRIPTIONS, Options, default_settings

TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "workbook_templates"
FIXED_TIME = dt.datetime(2026, 1, 1)
MAX_ROW = 1048576

FORMATS = {"date": "yyyy-mm-dd", "money": "#,##0.00", "percent": "0%", "number": "0",
           "rating": "0"}
HEADER_FONT = Font(bold=True, color="FFFFFF")
ENGINE_HEADER_FILL = PatternFill("solid", fgColor="7F7F7F")
TITLE_FONT = Font(bold=True, size=14)
ENGINE_NOTE = ("Maintained by xlcrm: edits here are overwritten on the next sync.",
               "由 xlcrm 自动维护：手工修改会在下次同步时被覆盖。")
SETTINGS_TITLE = ("Settings: edit these tables to customise xlcrm (stages, people, lists, "
                  "options, custom fields).",
                  "设置：编辑下列表格即可自定义 xlcrm（阶段、人员、列表、选项、自定义字段）。")
DASHBOARD_HINT = ("Run xlcrm sync (or the Dashboard button) to build the dashboard.",
                  "运行 xlcrm sync（或点击看板按钮）生成看板。")
PICK_FROM_LIST = ("Pick a value from the list (see Settings).", "请从下拉列表中选择（见设置表）。")
PERCENT_RANGE = ("Between 0% and 100%.", "应在 0% 到 100% 之间。")


def template_path(lang: Lang) -> Path:
    return TEMPLATE_DIR / f"xlcrm_template_{lang}.xlsx"


def build_template(lang: Lang) -> Workbook:
    """A new, empty CRM workbook in `lang`."""
    wb = Workbook()
    wb.remove(wb.active)
    settings_ws_title = schema.SETTINGS.label(lang)
    for sdef in schema.DATA_SHEETS:
        _data_sheet(wb, sdef, lang)
    for sdef in schema.ENGINE_SHEETS:
        _engine_sheet(wb, sdef, lang)
    _settings_sheet(wb, settings_ws_title, lang)
    _defined_names(wb, lang)
    wb.active = 0
    wb.properties.creator = "xlcrm"
    wb.properties.title = "xlcrm CRM"
    wb.properties.created = FIXED_TIME
    wb.properties.modified = FIXED_TIME
    wb.properties.lastModifiedBy = None  # the change log then names the OS user
    return wb


def save_template(wb: Workbook, path: Path) -> None:
    """Save byte-for-byte reproducibly: openpyxl stamps "modified" and zip entry times with
    the current time, so the package is re-packed with both pinned."""
    buffer = io.BytesIO()
    wb.save(buffer)
    stamp = FIXED_TIME.strftime("%Y-%m-%dT%H:%M:%SZ").encode()
    with zipfile.ZipFile(buffer) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == "docProps/core.xml":
                data = re.sub(rb"(<dcterms:modified[^>]*>)[^<]*", rb"\g<1>" + stamp, data)
            entry = zipfile.ZipInfo(item.filename, date_time=FIXED_TIME.timetuple()[:6])
            entry.compress_type = zipfile.ZIP_DEFLATED
            out.writestr(entry, data)


def write_templates(folder: Path = TEMPLATE_DIR) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for lang in LANGS:
        path = folder / f"xlcrm_template_{lang}.xlsx"
        save_template(build_template(lang), path)
        out.append(path)
    return out


def copy_template(lang: Lang, dest: Path) -> None:
    """Put a fresh template at `dest` (the committed file, or a new build when installed)."""
    source = template_path(lang)
    if source.is_file():
        shutil.copyfile(source, dest)
    else:
        save_template(build_template(lang), dest)


# ---------------------------------------------------------------------------------------------

def _data_sheet(wb: Workbook, sdef: SheetDef, lang: Lang) -> None:
    ws = wb.create_sheet(sdef.label(lang))
    for col, f in enumerate(sdef.fields, start=1):
        cell = ws.cell(row=1, column=col, value=f.label(lang))
        letter = get_column_letter(col)
        ws.column_dimensions[letter].width = f.width
        if f.engine:
            cell.fill = ENGINE_HEADER_FILL
            cell.font = HEADER_FONT
            cell.comment = Comment(schema.label(ENGINE_NOTE, lang), "xlcrm-template")
        if f.type in FORMATS:
            ws.column_dimensions[letter].number_format = FORMATS[f.type]
            ws.cell(row=2, column=col).number_format = FORMATS[f.type]
        _validation(ws, f, letter, lang)
    last = get_column_letter(len(sdef.fields))
    table = Table(displayName=sdef.table, ref=f"A1:{last}2")
    table.tableStyleInfo = TableStyleInfo(name="TableStyleMedium2", showRowStripes=True)
    ws.add_table(table)
    ws.freeze_panes = "C2"
    ws.sheet_view.zoomScale = 100


def _validation(ws: Worksheet, f: Field, letter: str, lang: Lang) -> None:
    source = None
    if f.type == "choice" and f.choices:
        source = f"lst_{f.choices}"
    elif f.type == "person":
        source = "lst_people"
    elif f.type == "customer_ref":
        source = "lst_customer_id"
    elif f.type == "opportunity_ref":
        source = "lst_opportunity_id"
    if source is not None:
        dv = DataValidation(type="list", formula1=f"={source}", allow_blank=True,
                            showErrorMessage=True, errorStyle="warning")
    elif f.type == "percent":
        dv = DataValidation(type="decimal", operator="between", formula1="0", formula2="1",
                            allow_blank=True, showErrorMessage=True, errorStyle="warning")
    else:
        return
    dv.errorTitle = "xlcrm"
    message = PICK_FROM_LIST if source else PERCENT_RANGE
    dv.error = schema.label(message, lang)
    ws.add_data_validation(dv)
    dv.add(f"{letter}2:{letter}{MAX_ROW}")


def _engine_sheet(wb: Workbook, sdef: SheetDef, lang: Lang) -> None:
    ws = wb.create_sheet(sdef.label(lang))
    if sdef.key in schema.ENGINE_COLUMNS:
        write_engine_header(ws, sdef.key, lang)
    else:
        ws["A1"] = sdef.label(lang)
        ws["A1"].font = TITLE_FONT
        ws["A2"] = schema.label(DASHBOARD_HINT, lang)
        ws.sheet_properties.tabColor = "7F7F7F"
    protect_sheet(ws)


def write_engine_header(ws: Worksheet, key: str, lang: Lang) -> None:
    """The styled, frozen header row of an engine sheet, and its tab colour."""
    columns = schema.ENGINE_COLUMNS[key]
    for col, (_, en, zh) in enumerate(columns, start=1):
        cell = ws.cell(row=1, column=col, value=en if lang == "en" else zh)
        cell.font = HEADER_FONT
        cell.fill = ENGINE_HEADER_FILL
        ws.column_dimensions[get_column_letter(col)].width = 16
    ws.column_dimensions[get_column_letter(len(columns))].width = 60
    ws.freeze_panes = "A2"
    ws.sheet_properties.tabColor = "7F7F7F"


def protect_sheet(ws: Worksheet) -> None:
    """Protect an engine sheet against accidental edits (no password; filtering allowed)."""
    ws.protection.sheet = True
    ws.protection.autoFilter = False
    ws.protection.sort = False
    ws.protection.formatColumns = False


def settings_blocks(lang: Lang) -> dict[str, tuple[list[str], list[list[Any]]]]:
    """The Settings tables a new workbook starts with: table name -> (headers, rows)."""
    defaults = default_settings(lang)
    index = 0 if lang == "en" else 1
    stages = [[s.name, s.probability, s.order, s.kind, s.max_days] for s in defaults.stages]
    people = [[p.name, p.email, p.role, ("Yes", "是")[index]] for p in defaults.people]
    lists = list(defaults.lists.values())
    depth = max(len(v) for v in lists)
    list_rows = [[v[i] if i < len(v) else None for v in lists] for i in range(depth)]
    option_rows = [[key, getattr(Options(), key),
                    OPTION_DESCRIPTIONS[key][index]] for key in OPTION_DESCRIPTIONS]
    notify = [[schema.NOTIFY_EVENTS[event][index], who[index], how[index], threshold]
              for event, who, how, threshold in schema.DEFAULT_NOTIFY_RULES]
    rows_by_table: dict[str, list[list[Any]]] = {
        "Stages": stages, "People": people, "Lists": list_rows, "Options": option_rows,
        "CustomFields": [[None] * 5], "ServiceRules": [[None] * 3], "Notifications": notify,
        "Pool": [[r.tier, r.follow_up_days, r.win_days, r.warn_days]
                 for r in defaults.pool_rules],
        "ExportStages": [[e.stage, e.hubspot, e.salesforce, e.zoho, e.odoo]
                         for e in defaults.export_stages]}
    return {name: ([h[1 + index] for h in schema.SETTINGS_TABLES[name]], rows)
            for name, rows in rows_by_table.items()}


def _settings_sheet(wb: Workbook, title: str, lang: Lang) -> None:
    ws = wb.create_sheet(title)
    ws["A1"] = schema.label(SETTINGS_TITLE, lang)
    ws["A1"].font = TITLE_FONT
    column = 1
    for name, (headers, rows) in settings_blocks(lang).items():
        for offset, header in enumerate(headers):
            ws.cell(row=3, column=column + offset, value=header)
            width = 34 if (name, offset) == ("Options", 2) else 14
            ws.column_dimensions[get_column_letter(column + offset)].width = width
        for r, row in enumerate(rows, start=4):
            for offset, value in enumerate(row):
                ws.cell(row=r, column=column + offset, value=value)
        if name == "Stages":
            for r in range(4, 4 + len(rows)):
                ws.cell(row=r, column=column + 1).number_format = "0%"
        ref = (f"{get_column_letter(column)}3:"
               f"{get_column_letter(column + len(headers) - 1)}{3 + max(len(rows), 1)}")
        table = Table(displayName=name, ref=ref)
        table.tableStyleInfo = TableStyleInfo(name="TableStyleLight9", showRowStripes=True)
        ws.add_table(table)
        column += len(headers) + 1
    ws.freeze_panes = "A4"


def _defined_names(wb: Workbook, lang: Lang) -> None:
    index = 1 if lang == "en" else 2
    names = {
        "lst_stage": f"Stages[{schema.SETTINGS_TABLES['Stages'][0][index]}]",
        "lst_people": f"People[{schema.SETTINGS_TABLES['People'][0][index]}]",
        "lst_customer_id": f"{schema.CUSTOMERS.table}[{schema.CUSTOMERS.fields[0].label(lang)}]",
        "lst_opportunity_id":
            f"{schema.OPPORTUNITIES.table}[{schema.OPPORTUNITIES.fields[0].label(lang)}]",
    }
    for key, spec in schema.LISTS.items():
        names[f"lst_{key}"] = f"Lists[{spec[index - 1]}]"
    for name, ref in names.items():
        wb.defined_names[name] = DefinedName(name, attr_text=ref)


def main() -> None:
    for path in write_templates():
        print(path)


if __name__ == "__main__":
    main()
