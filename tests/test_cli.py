"""The command line: exit codes, JSON in the contract's shape, init, sync and demo."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from tests.conftest import append_rows, edit_cells
from xlcrm.reader import read_workbook
from xlcrm.sample import PLANTED


def test_validate_json_has_the_contract_shape(clean_book: Callable[..., Path],
                                              cli: Callable[..., Any]) -> None:
    path = clean_book()
    [(sheet, cell, row)] = edit_cells(path, [("opportunities", "O-000002", "amount", -10)])
    result = cli("validate", path, "--format", "json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert set(report) == {"version", "workbook", "checked_at", "counts", "summary", "issues"}
    assert report["version"] == 1 and report["workbook"] == path.name
    assert report["counts"] == {"customers": 12, "opportunities": 24, "interactions": 60}
    assert report["summary"]["error"] == 1
    [issue] = [i for i in report["issues"] if i["severity"] == "error"]
    assert list(issue) == ["code", "severity", "sheet", "row", "cell", "field", "record_id",
                           "value", "message"]
    assert (issue["code"], issue["sheet"], issue["row"], issue["cell"], issue["field"],
            issue["record_id"], issue["value"]) == ("negative-amount", sheet, row, cell, "amount",
                                                    "O-000002", -10)


def test_validate_exit_codes(clean_book: Callable[..., Path], cli: Callable[..., Any],
                             tmp_path: Path) -> None:
    path = clean_book()
    assert cli("validate", path).exit_code == 0
    edit_cells(path, [("customers", "C-000001", "email", "x@")])
    assert cli("validate", path).exit_code == 1
    assert cli("validate", tmp_path / "missing.xlsx").exit_code == 2
    assert cli("validate", path, "--format", "yaml").exit_code == 2
    assert cli("frobnicate").exit_code == 2


def test_validate_without_write_changes_nothing(clean_book: Callable[..., Path],
                                                cli: Callable[..., Any]) -> None:
    path = clean_book()
    edit_cells(path, [("customers", "C-000001", "email", "x@")])
    before = path.read_bytes()
    assert cli("validate", path).exit_code == 1
    assert path.read_bytes() == before
    assert not (path.parent / ".xlcrm").exists()


def test_text_output_groups_by_sheet_and_ends_with_a_summary(
        clean_book: Callable[..., Path], cli: Callable[..., Any]) -> None:
    path = clean_book("zh")
    edit_cells(path, [("customers", "C-000001", "email", "x@"),
                      ("opportunities", "O-000001", "amount", -1)])
    result = cli("validate", path)
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert lines[-1].startswith(f"{path.name}：2 个错误")
    assert lines.index("客户") < lines.index("商机")
    assert any("invalid-email" in line for line in lines)


def test_init_never_overwrites_without_force(tmp_path: Path, cli: Callable[..., Any]) -> None:
    path = tmp_path / "crm.xlsx"
    assert cli("init", path, "--lang", "zh").exit_code == 0
    assert openpyxl.load_workbook(path).sheetnames[0] == "客户"
    before = path.read_bytes()
    result = cli("init", path)
    assert result.exit_code == 2 and "--force" in result.stderr
    assert path.read_bytes() == before
    assert cli("init", path, "--force", "--sample", "5").exit_code == 0
    assert read_workbook(path).counts() == {"customers": 5, "opportunities": 10,
                                            "interactions": 25}
    assert cli("init", tmp_path / "crm.csv").exit_code == 2


def test_init_sample_is_realistic_and_has_its_mistakes(tmp_path: Path,
                                                       cli: Callable[..., Any]) -> None:
    path = tmp_path / "crm.xlsx"
    assert cli("init", path, "--lang", "zh", "--sample", "200").exit_code == 0
    data = read_workbook(path)
    customers = data.sheets["customers"].frame
    assert data.counts() == {"customers": 200, "opportunities": 400, "interactions": 1000}
    assert customers["name"].str.contains("有限公司").mean() > 0.5
    assert customers["name"].is_unique
    stages = set(data.sheets["opportunities"].frame["stage"])
    assert stages == {s.name for s in data.settings.stages}
    report = json.loads(cli("validate", path, "--format", "json").stdout)
    assert set(PLANTED) <= {i["code"] for i in report["issues"]}


def test_sync_fills_blank_ids_and_writes_results(clean_book: Callable[..., Path],
                                                 cli: Callable[..., Any]) -> None:
    path = clean_book()
    data = read_workbook(path)
    customers = data.sheets["customers"]
    book = openpyxl.load_workbook(path)
    append_rows(customers.name, customers.table, customers.columns,
                [{"name": "New Prospect Ltd", "city": "Xi'an"}])(book)
    book.save(path)
    sheet, row = customers.name, customers.last_row + 1
    cell = f"A{row}"
    edit_cells(path, [("interactions", "I-000007", "interaction_id", None)])
    result = cli("sync", path, "--format", "json")
    assert result.exit_code == 0, result.stdout
    payload = json.loads(result.stdout)
    assert payload["filled_ids"] == 2 and payload["validation"]["summary"]["error"] == 0
    book = openpyxl.load_workbook(path)
    assert book[sheet][cell].value == "C-000013"  # after the highest used number
    ids = [r[0] for r in book["Interactions"].iter_rows(min_row=2, values_only=True)]
    assert "I-000061" in ids and None not in ids
    again = cli("sync", path, "--format", "json")
    assert json.loads(again.stdout)["filled_ids"] == 0


def test_sync_reports_errors_with_exit_1(clean_book: Callable[..., Path],
                                         cli: Callable[..., Any]) -> None:
    path = clean_book()
    edit_cells(path, [("customers", "C-000001", "name", None)])
    result = cli("sync", path)
    assert result.exit_code == 1
    rows = list(openpyxl.load_workbook(path)["Issues"].iter_rows(min_row=2, values_only=True))
    assert [r[1] for r in rows if r[0] == "Error"] == ["missing-required"]


def test_demo_builds_and_syncs_both_languages(tmp_path: Path, cli: Callable[..., Any]) -> None:
    folder = tmp_path / "demo"
    result = cli("demo", folder, "--sample", "20")
    assert result.exit_code == 0, result.stdout
    for lang, first_sheet in (("zh", "客户"), ("en", "Customers")):
        path = folder / f"crm_{lang}.xlsx"
        assert str(path) in result.stdout
        book = openpyxl.load_workbook(path)
        assert book.sheetnames[0] == first_sheet
        issues = book.worksheets[book.sheetnames.index("校验问题" if lang == "zh" else "Issues")]
        codes = {r[1] for r in issues.iter_rows(min_row=2, values_only=True)}
        assert set(PLANTED) <= codes
    # running it again is fine: the demo folder is its own
    assert cli("demo", folder, "--sample", "20").exit_code == 0


@pytest.mark.parametrize("args", [["--help"], ["init", "--help"], ["validate", "--help"],
                                  ["sync", "--help"], ["demo", "--help"]])
def test_help_works(cli: Callable[..., Any], args: list[str]) -> None:
    assert cli(*args).exit_code == 0


def test_python_dash_m_entry_point(clean_book: Callable[..., Path]) -> None:
    import subprocess
    import sys

    path = clean_book()
    result = subprocess.run([sys.executable, "-m", "xlcrm", "validate", str(path)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "0 errors" in result.stdout
