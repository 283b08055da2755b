"""Duplicate customers: pairs a person believes, never pairs a person would laugh at."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openpyxl
import pandas as pd
import pytest
import python_calamine

from tests.conftest import TODAY, append_rows, edit_cells
from xlcrm.dedupe import find_duplicate_customers
from xlcrm.jobs import sync_workbook
from xlcrm.normalize import name_words
from xlcrm.reader import read_workbook
from xlcrm.validate import validate


def clusters(rows: list[dict[str, Any]], threshold: float = 0.85) -> list[list[str]]:
    frame = pd.DataFrame(rows)
    for column in ("phone", "email", "city", "tax_id"):
        if column not in frame:
            frame[column] = None
    return [[frame.at[i, "customer_id"] for i in m.indices]
            for m in find_duplicate_customers(frame, "CN", threshold)]


def c(cid: str, name: str, **kw: Any) -> dict[str, Any]:
    return {"customer_id": cid, "name": name, **kw}


@pytest.mark.parametrize(("a", "b"), [
    ("Stripe, Inc.", "Strix Ltd"),
    ("深圳市小鹏汽车有限公司", "大鹏汽车有限公司"),
    ("上海华信科技有限公司", "上海华讯科技有限公司"),
    ("X Capital LLC", "Y Capital LLC"),
])
def test_names_alone_that_only_look_alike_never_match(a: str, b: str) -> None:
    assert clusters([c("C1", a), c("C2", b)]) == []


def test_the_same_brand_in_two_cities_with_different_phones_is_two_customers() -> None:
    assert clusters([c("C1", "喜茶餐饮管理有限公司", phone="13912345678", city="上海"),
                     c("C2", "喜茶餐饮管理有限公司", phone="13887654321", city="深圳")]) == []


def test_one_switchboard_is_not_one_customer() -> None:
    assert clusters([c("C1", "Acme Corporation", phone="021-62345678"),
                     c("C2", "Globex Limited", phone="+86 21 6234 5678")]) == []


def test_different_tax_ids_are_different_companies() -> None:
    assert clusters([c("C1", "华信科技有限公司", tax_id="91310115MA1H7GLU5L", city="上海"),
                     c("C2", "华信科技有限公司", tax_id="91440300MA5F8TWK3W", city="上海")]) == []


def test_real_duplicates_match_with_reasons() -> None:
    frame = pd.DataFrame([
        c("C1", "Acme Corporation", phone="+86 21 6234 5678", email="info@acme.com"),
        c("C2", "ACME Corp.", phone="021-62345678", email="sales@acme.com"),
        c("C3", "（上海）華訊電子股份有限公司", email="li@huaxun-e.cn"),
        c("C4", "华讯电子有限公司", email="wang@huaxun-e.cn"),
        c("C5", "Globex Limited"), c("C6", "Globex Ltd"),
        c("C7", "Initech Holdings", email="bob@qq.com"),
        c("C8", "Umbrella Trading", email="amy@qq.com"),  # free mail is no evidence
    ]).assign(city=None, tax_id=None)
    found = find_duplicate_customers(frame, "CN", 0.85)
    got = {tuple(frame.at[i, "customer_id"] for i in m.indices): m for m in found}
    assert set(got) == {("C1", "C2"), ("C3", "C4"), ("C5", "C6")}
    acme = got[("C1", "C2")].pairs[0]
    assert "same phone 2162345678" in acme.reasons and "name 100%" in acme.reasons
    assert acme.score >= 0.95


def test_clusters_are_transitive() -> None:
    assert clusters([c("C1", "Globex Ltd", phone="13900000001"),
                     c("C2", "Globex Limited", phone="13900000001", email="a@globex.cn"),
                     c("C3", "GLOBEX Co.", email="a@globex.cn")]) == [["C1", "C2", "C3"]]


def test_names_fold_script_legal_form_and_region() -> None:
    assert name_words("（上海）華訊科技股份有限公司") == "华讯科技"
    assert name_words("华讯科技(深圳)有限公司") == "华讯科技"
    assert name_words("ACME Corp.") == name_words("Acme Corporation") == "acme"


@pytest.fixture
def book(clean_book: Callable[..., Path]) -> Path:
    path = clean_book()
    sheet = read_workbook(path).sheets["customers"]
    wb = openpyxl.load_workbook(path)
    append_rows(sheet.name, sheet.table, sheet.columns, [
        {"customer_id": "C-000901", "name": "Zeta Robotics Ltd", "phone": "13912345678"},
        {"customer_id": "C-000902", "name": "ZETA Robotics Limited", "phone": "139 1234 5678"}])(wb)
    wb.save(path)
    return path


def test_dedupe_command_json(book: Path, cli: Callable[..., Any]) -> None:
    result = cli("dedupe", book, "--format", "json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["version"] == 1
    [cluster] = [c for c in payload["clusters"] if "C-000901" in c["record_ids"]]
    assert cluster["sheet"] == "Customers" and cluster["record_ids"] == ["C-000901", "C-000902"]
    assert cluster["rows"][1] == cluster["rows"][0] + 1
    pair = cluster["pairs"][0]
    assert (pair["a"], pair["b"]) == ("C-000901", "C-000902") and pair["score"] >= 0.9
    assert "same phone 13912345678" in pair["reasons"]
    assert cli("dedupe", book, "--sheet", "interactions").exit_code == 0
    assert cli("dedupe", book, "--sheet", "invoices").exit_code == 2


def test_write_and_sync_fill_the_duplicates_sheet(book: Path, cli: Callable[..., Any]) -> None:
    assert cli("dedupe", book, "--write").exit_code == 0
    rows = python_calamine.CalamineWorkbook.from_path(str(book)).get_sheet_by_name(
        "Duplicates").to_python()
    members = [r for r in rows[1:] if r[2] in ("C-000901", "C-000902")]
    assert len(members) == 2 and members[0][0] == members[1][0]
    assert "same phone" in members[0][5]
    result = sync_workbook(book, today=TODAY)
    assert {i.record_id for i in result.report.issues if i.code == "possible-duplicate"} == {
        "C-000901", "C-000902"}
    rows = python_calamine.CalamineWorkbook.from_path(str(book)).get_sheet_by_name(
        "Duplicates").to_python()
    assert {r[2] for r in rows[1:]} >= {"C-000901", "C-000902"}


def all_values(path: Path) -> dict[str, list[list[Any]]]:
    """Every cell value of every sheet, as an independent reader sees them."""
    book = python_calamine.CalamineWorkbook.from_path(str(path))
    return {name: book.get_sheet_by_name(name).to_python() for name in book.sheet_names}


def test_merge_fills_repoints_removes_and_undo_puts_everything_back(
        book: Path, cli: Callable[..., Any]) -> None:
    data = read_workbook(book)
    opps = data.sheets["opportunities"]
    wb = openpyxl.load_workbook(book)
    append_rows(opps.name, opps.table, opps.columns, [
        {"opportunity_id": "O-000901", "title": "Arm order", "customer_id": "C-000902",
         "stage": "Lead", "amount": 5000, "owner": "Alice Chen"}])(wb)
    wb.save(book)
    # the later record holds a field the survivor lacks
    edit_cells(book, [("customers", "C-000902", "city", "Suzhou"),
                      ("customers", "C-000901", "created_at", TODAY.replace(year=2020)),
                      ("customers", "C-000902", "created_at", TODAY)])
    before = all_values(book)
    clusters = json.loads(cli("dedupe", book, "--format", "json").output)["clusters"]
    number = next(n for n, c in enumerate(clusters, 1) if "C-000901" in c["record_ids"])
    result = cli("dedupe", book, "--merge", "--cluster", str(number))
    assert result.exit_code == 0, result.output
    merge_id = result.output.split("--undo ")[1].split()[0]

    merged = read_workbook(book)
    customers = merged.sheets["customers"].frame.set_index("customer_id")
    assert "C-000902" not in customers.index  # removed, the oldest survives
    assert customers.at["C-000901", "city"] == "Suzhou"  # filled from the merged record
    opp_frame = merged.sheets["opportunities"].frame.set_index("opportunity_id")
    assert opp_frame.at["O-000901", "customer_id"] == "C-000901"  # repointed
    table = openpyxl.load_workbook(book)["Customers"].tables["tblCustomers"]
    assert int(table.ref.split(":")[1][1:]) == len(customers) + 1  # the Table shrank
    log = json.loads(cli("log", book, "--record", "C-000902", "--format", "json").output)
    assert log["changes"][-1]["action"] == "deleted" and log["changes"][-1]["job"] == "merge"

    undone = cli("dedupe", book, "--undo", merge_id)
    assert undone.exit_code == 0, undone.output
    assert all_values(book) == before  # every cell of every sheet as it was
    assert cli("dedupe", book, "--undo", merge_id).exit_code == 2  # once only
    assert cli("dedupe", book, "--merge").exit_code == 2  # needs --cluster or --all


def test_opportunities_same_customer_similar_title_overlapping_period() -> None:
    from xlcrm.dedupe import find_duplicate_opportunities

    d = pd.Timestamp
    frame = pd.DataFrame([
        {"opportunity_id": "O1", "customer_id": "C1", "company": None, "title": "ERP 系统升级",
         "created_at": d("2026-09-01"), "expected_close": d("2026-12-01"), "closed_at": None,
         "amount": 80000},
        {"opportunity_id": "O2", "customer_id": "c1", "company": None, "title": "ERP系统升级",
         "created_at": d("2026-10-15"), "expected_close": None, "closed_at": None,
         "amount": "80,000"},
        {"opportunity_id": "O3", "customer_id": "C1", "company": None, "title": "ERP 系统升级",
         "created_at": d("2024-01-10"), "expected_close": d("2024-03-01"), "closed_at": None},
        {"opportunity_id": "O4", "customer_id": "C2", "company": None, "title": "ERP 系统升级",
         "created_at": d("2026-09-01"), "expected_close": None, "closed_at": None},
        {"opportunity_id": "O5", "customer_id": "C1", "company": None, "title": "年度维保合同",
         "created_at": d("2026-09-01"), "expected_close": None, "closed_at": None},
    ])
    found = find_duplicate_opportunities(frame)
    assert [[frame.at[i, "opportunity_id"] for i in m.indices] for m in found] == [["O1", "O2"]]
    assert "open at the same time" in found[0].reasons


def test_interactions_same_customer_day_and_type_near_identical_summary() -> None:
    from xlcrm.dedupe import find_duplicate_interactions

    day = pd.Timestamp("2026-11-20")
    frame = pd.DataFrame([
        {"customer_id": "C1", "date": day, "kind": "Call", "summary": "Discussed the Q1 order."},
        {"customer_id": "C1", "date": day, "kind": "Call", "summary": "Discussed the Q1 order"},
        {"customer_id": "C1", "date": day, "kind": "Visit", "summary": "Discussed the Q1 order."},
        {"customer_id": "C1", "date": day, "kind": "Call", "summary": "Sent the price list."},
    ])
    assert [m.indices for m in find_duplicate_interactions(frame)] == [[0, 1]]


def test_addresses_are_evidence_between_people_not_companies() -> None:
    same_place = "14 Laker Crescent, Whittingham"
    people = [c("C1", "Rebekah Green", kind="Individual", address=same_place, city="Sydney"),
              c("C2", "Rebekah Gren", kind="Individual", address="14 laker cres whittingham",
                city="Sydney")]
    assert clusters(people) == [["C1", "C2"]]
    firms = [c("C3", "Acme Trading Co., Ltd", kind="Company", address=same_place),
             c("C4", "Zeta Trading Co., Ltd", kind="Company", address=same_place)]
    assert clusters(firms) == []


def test_a_foreign_tax_number_identifies_even_with_a_typo_in_the_name() -> None:
    assert clusters([c("C1", "Müller Maschinenbau GmbH", tax_id="DE 129 273 398"),
                     c("C2", "Mueller Maschinenbau", tax_id="DE129273398")]) == [["C1", "C2"]]


def test_a_persons_chinese_name_matches_its_pinyin() -> None:
    people = [c("C1", "张伟", kind="个人", phone="13900001111"),
              c("C2", "Zhang Wei", kind="Individual", phone="139 0000 1111")]
    assert clusters(people) == [["C1", "C2"]]
    firms = [c("C3", "华信科技", kind="企业"), c("C4", "Huaxin Keji", kind="Company")]
    assert clusters(firms) == []  # company names are not transliterated


def test_a_person_and_the_same_name_without_a_customer_type_are_one_customer() -> None:
    # a team's sheet (or an import) often leaves Customer Type blank: 张杰 with the same
    # phone is the person 张杰, whose name is compared in pinyin
    same = [c("C1", "张杰", kind="Individual", phone="13902326346", city="Wuhan"),
            c("C2", "张杰", phone="139-0232-6346", city="Wuhan")]
    assert clusters(same) == [["C1", "C2"]]
    other = [c("C1", "张杰", kind="Individual", phone="13902326346", city="Wuhan"),
             c("C3", "李明", phone="13902326346", city="Wuhan")]
    assert clusters(other) == []  # one line, another name: still two customers
    firm = [c("C4", "华信科技", kind="Company", phone="02162345678"),
            c("C5", "华信科技", phone="021-62345678")]
    assert clusters(firm) == [["C4", "C5"]]  # a company stays a company


def tokens(folded: str) -> list[str]:
    """The rule, readably: words of a folded name (runs of a-z and 0-9); Chinese runs as
    character pairs, a lone character alone."""
    out: list[str] = []
    for word in re.findall(r"[a-z0-9]+|[\u3400-\u9fff]+", folded):
        if "\u3400" <= word[0] <= "\u9fff":
            out += [word[i:i + 2] for i in range(max(len(word) - 1, 1))]
        else:
            out.append(word)
    return out


def test_the_numpy_tokeniser_agrees_with_the_reference() -> None:
    """`_tokenise` (code points, hashes) gives each name the same distinct tokens, and the
    same texts, as `tokens`, the readable one-name form."""
    from xlcrm.dedupe import _tokenise
    from xlcrm.normalize import name_words_many
    from xlcrm.sample import sample_records

    raw = [str(r["name"]) for lang in ("zh", "en")
           for r in sample_records(400, lang, seed=5, mistakes=False, opportunities=0,
                                   interactions=0).customers]
    names = name_words_many(raw) + [
        "", "a", "acme acme trading", "华", "华 讯", "ab华讯科技cd 9", "café société 2",
        "x\U0001f600y 华讯", "12345 67890", "华讯华讯", "zhang wei"]
    owner, token, texts = _tokenise(names)
    assert len(set(texts)) == len(texts)  # one number a token
    for i, name in enumerate(names):
        mine = [texts[t] for t in token[owner == i]]
        assert len(mine) == len(set(mine)) and set(mine) == set(tokens(name)), name


def _many_customers() -> tuple[pd.DataFrame, set[tuple[str, str]]]:
    """Sample customers in both languages, each fifth entered again by another rep (another
    legal form, case, spacing; the phone typed another way or left out), and look-alikes
    (a number added to the name, nothing else known). With the planted pairs that kept a
    phone, which must be found."""
    from xlcrm.sample import sample_records

    rows = []
    for lang in ("zh", "en"):
        data = sample_records(600, lang, seed=11, mistakes=False, opportunities=0,
                              interactions=0)
        rows += [dict(r, customer_id=f"{lang}-{r['customer_id']}") for r in data.customers]
    planted = set()
    originals = list(rows)
    for number, original in enumerate(originals[::5]):
        copy = dict(original, customer_id=f"DUP-{number}", tax_id=None, email=None)
        name = str(original["name"])
        copy["name"] = (name.replace("有限公司", "股份有限公司") if number % 2
                        else f" {name.upper()} ")
        copy["phone"] = str(original.get("phone") or "").replace(" ", "-") if number % 3 else None
        rows.append(copy)
        if copy["phone"]:  # a name alone may be a common one: the phone settles it
            planted.add((original["customer_id"], copy["customer_id"]))
    for number, original in enumerate(originals[1::7]):
        rows.append(dict(original, customer_id=f"LOOK-{number}", tax_id=None, email=None,
                         phone=None, name=str(original["name"]) + " 2"))
    frame = pd.DataFrame(rows)
    frame["_row"] = range(2, len(frame) + 2)
    return frame, planted


def _pairs(frame: pd.DataFrame, threshold: float, **kw: Any) -> list[tuple[Any, ...]]:
    ids = frame["customer_id"].tolist()
    return sorted((ids[p.a], ids[p.b], p.score, tuple(p.reasons))
                  for m in find_duplicate_customers(frame, "CN", threshold, **kw)
                  for p in m.pairs)


@pytest.mark.parametrize("threshold", [0.85, 0.7, 0.6])
def test_the_fast_gate_changes_no_result(threshold: float) -> None:
    frame, planted = _many_customers()
    gated = _pairs(frame, threshold)
    assert gated == _pairs(frame, threshold, gate=False)
    found = {p[:2] for p in gated} | {p[1::-1] for p in gated}
    assert len(planted) > 100 and planted <= found  # found: the comparison can fail


def test_the_forked_child_gives_the_same_result(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from xlcrm import dedupe

    frame, _ = _many_customers()
    alone = _pairs(frame, 0.85)
    monkeypatch.setattr(dedupe, "PARALLEL_FROM", 100)
    if sys.platform == "linux" and (os.cpu_count() or 1) > 1:
        with dedupe.Background(len(frame), sorted, [3, 1, 2], start_from=100) as child:
            assert child.process is not None  # the forked path really runs here
            assert child.result() == [1, 2, 3]
    forked = []
    result = dedupe.Background.result

    def noted(self: Any) -> Any:
        forked.append(self.process is not None)
        return result(self)

    monkeypatch.setattr(dedupe.Background, "result", noted)
    assert _pairs(frame, 0.85) == alone
    if sys.platform == "linux" and (os.cpu_count() or 1) > 1:
        assert forked == [True]  # the matcher's identifiers really came from the child


def test_a_child_that_dies_is_done_again_here(monkeypatch: pytest.MonkeyPatch) -> None:
    """A child that dies (out of memory, killed) costs time, never a result."""
    import sys

    from xlcrm import background

    if sys.platform != "linux" or (os.cpu_count() or 1) < 2:
        pytest.skip("the child is forked on Linux with a second core only")
    parent = os.getpid()

    def where() -> str:
        if os.getpid() != parent:
            os._exit(1)  # the child dies before it answers
        return "here"

    with background.Background(1, where, start_from=1) as child:
        assert child.process is not None
        assert child.result() == "here"
        assert child.process is None  # ended and joined


def test_a_child_that_dies_before_then_leaves_all_of_it_to_this_process() -> None:
    """With `then` (an import's log, staged by the child and committed when told), a child
    that dies on its way hands the whole of it to this process: `func` and `then` are both
    computed here, with the message, and the answer is the same."""
    import sys

    from xlcrm import background

    if sys.platform != "linux" or (os.cpu_count() or 1) < 2:
        pytest.skip("the child is forked on Linux with a second core only")
    parent = os.getpid()

    def made() -> list[int]:
        return [3, 1, 2]

    def then(values: list[int], message: str) -> str:
        if os.getpid() != parent:
            os._exit(1)  # the child dies after it was told to go on
        return message + ":" + ",".join(map(str, sorted(values)))

    with background.Background(1, made, start_from=1, then=then) as child:
        assert child.process is not None
        assert child.finish("sha") == "sha:1,2,3"
        assert child.process is None


def test_no_fork_means_all_of_it_here(monkeypatch: pytest.MonkeyPatch) -> None:
    """When the system cannot fork (out of memory, a process limit) the work is done here."""
    import gc
    import multiprocessing

    from xlcrm import background

    class NoFork:
        Pipe = staticmethod(multiprocessing.get_context().Pipe)

        class Process:
            def __init__(self, **_: Any) -> None:
                pass

            def start(self) -> None:
                raise OSError("Cannot allocate memory")

    monkeypatch.setattr(background.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(background.sys, "platform", "linux")
    monkeypatch.setattr(background, "get_context", lambda _: NoFork)
    with background.Background(1, sorted, [2, 1], start_from=1) as child:
        assert child.process is None and not gc.get_freeze_count()
        assert child.result() == [1, 2]


# ---------------------------------------------------------------------------------------------
# Repeat business is not duplication

def _deals(rows: list[dict[str, Any]]) -> pd.DataFrame:
    columns = ["opportunity_id", "customer_id", "company", "title", "stage", "amount",
               "currency", "owner", "created_at", "expected_close", "closed_at", "_row"]
    frame = pd.DataFrame([{**dict.fromkeys(columns), "_row": i + 2, **r}
                          for i, r in enumerate(rows)], columns=columns, dtype=object)
    return frame


def test_order_numbers_inside_titles_must_agree() -> None:
    from xlcrm.dedupe import find_duplicate_opportunities

    d = dt.date(2026, 11, 2)
    frame = _deals([
        {"opportunity_id": "O1", "customer_id": "C1", "title": "Order #1001", "amount": 500,
         "created_at": d},
        {"opportunity_id": "O2", "customer_id": "C1", "title": "Order #1002", "amount": 500,
         "created_at": d},
        {"opportunity_id": "O3", "customer_id": "C1", "title": "Order #1001", "amount": 500,
         "created_at": d + dt.timedelta(days=1)},
    ])
    found = find_duplicate_opportunities(frame)
    assert [[frame.at[i, "opportunity_id"] for i in m.indices] for m in found] == [["O1", "O3"]]


def test_a_300_deal_account_with_one_true_double_entry() -> None:
    """Years of monthly orders of the same products at the same prices, by several reps: one
    deal typed twice is found, none of the repeat orders is."""
    from xlcrm.dedupe import find_duplicate_opportunities

    start = dt.date(2020, 1, 1)
    rows = []
    for i in range(300):
        created = start + dt.timedelta(days=7 * i)
        rows.append({"opportunity_id": f"O{i}", "customer_id": "C1",
                     "title": ("Monthly supply", "Support renewal", "Spare parts")[i % 3],
                     "amount": (1200, 5000, 800)[i % 3], "stage": "Won",
                     "owner": f"Rep {i % 4}", "created_at": created,
                     "closed_at": created + dt.timedelta(days=5)})
    rows.append({**rows[150], "opportunity_id": "O-copy"})  # the same deal, typed again
    frame = _deals(rows)
    found = find_duplicate_opportunities(frame)
    assert [[frame.at[i, "opportunity_id"] for i in m.indices] for m in found] == [
        ["O150", "O-copy"]]
    assert "identical but for the ID" in found[0].reasons


def test_concurrent_deals_of_one_customer_agree_on_amount_and_time() -> None:
    from xlcrm.dedupe import find_duplicate_opportunities

    d = dt.date(2026, 10, 1)
    frame = _deals([
        {"opportunity_id": "O1", "customer_id": "C1", "title": "ERP upgrade", "amount": 80000,
         "owner": "Alice", "created_at": d, "expected_close": d + dt.timedelta(days=60)},
        {"opportunity_id": "O2", "customer_id": "C1", "title": "ERP upgrade ", "amount": 80000,
         "owner": "Alice", "created_at": d + dt.timedelta(days=2)},  # typed twice
        {"opportunity_id": "O3", "customer_id": "C1", "title": "ERP upgrade", "amount": 12000,
         "owner": "Alice", "created_at": d + dt.timedelta(days=1)},  # another amount: a 2nd deal
        {"opportunity_id": "O4", "customer_id": "C1", "title": "ERP upgrade", "amount": 80000,
         "owner": "Alice", "created_at": d + dt.timedelta(days=400)},  # next year's
    ])
    found = find_duplicate_opportunities(frame)
    assert [[frame.at[i, "opportunity_id"] for i in m.indices] for m in found] == [["O1", "O2"]]


def test_the_engines_own_deal_won_interactions_are_never_duplicates() -> None:
    from xlcrm.dedupe import find_duplicate_interactions

    day = pd.Timestamp("2026-11-20")
    frame = pd.DataFrame([
        {"customer_id": "C1", "date": day, "kind": "Other", "summary": "Deal won: Order A",
         "outcome": "Deal won", "_row": 2},
        {"customer_id": "C1", "date": day, "kind": "Other", "summary": "Deal won: Order B",
         "outcome": "Deal won", "_row": 3},
        {"customer_id": "C1", "date": day, "kind": "Other", "summary": "赢单：订单 A",
         "outcome": "赢单", "_row": 4},
        {"customer_id": "C1", "date": day, "kind": "Call", "summary": "Quote 2026-118 sent",
         "_row": 5},
        {"customer_id": "C1", "date": day, "kind": "Call", "summary": "Quote 2026-119 sent",
         "_row": 6},
    ])
    assert find_duplicate_interactions(frame) == []


def test_a_warning_names_a_few_records_and_points_at_the_duplicates_sheet(
        clean_book: Callable[..., Path]) -> None:
    from tests.test_day_one import typed

    path = clean_book(sample=0)
    typed(path, 0, [{"Name": "Acme Ltd", "CustomerID": "C-1"}])
    typed(path, 1, [{"Opportunity": "Big order", "CustomerID": "C-1", "Amount": 100,
                     "Created": dt.date(2026, 11, 1)} for _ in range(8)])
    report = validate(read_workbook(path), today=dt.date(2026, 11, 25))
    warnings = [i for i in report.issues if i.code == "possible-duplicate"
                and i.sheet == "Opportunities"]
    assert len(warnings) == 8
    assert all(i.message.count("row ") <= 3 and "Duplicates sheet" in i.message
               for i in warnings)


# ---------------------------------------------------------------------------------------------
# Phones read in their own country; company evidence

@pytest.mark.parametrize(("a", "b"), [
    (c("C1", "ACME Corp.", phone="415-555-0134", email="sales@acme-corp.com"),
     c("C2", "Acme Corporation", phone="+1 (415) 555-0134", email="info@acme-corp.com")),
    (c("C1", "Northwind Traders", phone="030 1234567", email="kontakt@northwind.de"),
     c("C2", "Northwind Traders GmbH", phone="+49 30 1234567", email="info@northwind.de")),
])
def test_a_foreign_number_without_its_country_code_agrees_with_itself(
        a: dict[str, Any], b: dict[str, Any]) -> None:
    [group] = clusters([a, b])
    assert group == ["C1", "C2"]


def test_an_unreadable_number_is_no_veto() -> None:
    assert clusters([c("C1", "Northwind Traders", phone="n/a", email="a@northwind.de"),
                     c("C2", "Northwind Traders GmbH", phone="+49 30 1234567",
                       email="b@northwind.de")]) == [["C1", "C2"]]


@pytest.mark.parametrize(("a", "b"), [("园林股份", "杭州园林"), ("*ST阳光", "ST阳光(退)"),
                                      ("Trading Co., Ltd.", "Trading Limited")])
def test_a_name_generic_once_folded_needs_a_second_piece_of_evidence(a: str, b: str) -> None:
    assert clusters([c("C1", a), c("C2", b)]) == []
    assert clusters([c("C1", a, phone="13912345678"), c("C2", b, phone="139 1234 5678")]) == [
        ["C1", "C2"]]


def test_stock_status_markers_fold_away() -> None:
    assert name_words("*ST华新水泥") == name_words("ST华新水泥(退)") == name_words("华新水泥")


def test_a_number_with_two_neighbours_swapped_is_one_typo() -> None:
    from xlcrm.dedupe import one_typo_apart

    assert one_typo_apart("4178304", "4173804") and one_typo_apart("4178304", "4178305")
    assert not one_typo_apart("4178304", "4138704") and not one_typo_apart("41783", "417830")
    same_home = "16 gabriel place greglea village"
    assert clusters([c("C1", "Joshua Cupo", kind="Individual", address=same_home,
                       tax_id="4178304"),
                     c("C2", "Joshua Dolan", kind="Individual", address=same_home,
                       tax_id="4173804")]) == [["C1", "C2"]]


@pytest.mark.parametrize("structure", ["formula", "merged cells"])
def test_a_merge_that_would_move_formulas_or_merged_cells_is_refused(
        book: Path, cli: Callable[..., Any], structure: str) -> None:
    """Closing up rows moves the cells below them; a formula with A1 references or merged
    cells would change meaning, so nothing is written (exit 2) and the reason is given."""
    sheet = read_workbook(book).sheets["customers"]
    wb = openpyxl.load_workbook(book)
    append_rows(sheet.name, sheet.table, sheet.columns, [
        {"customer_id": "C-000903", "name": "Below Ltd", "city": "Hefei"}])(wb)
    ws = wb[sheet.name]
    row = sheet.last_row + 1  # C-000903, under the twins (the last two rows read)
    notes = sheet.columns["notes"]
    if structure == "formula":
        ws.cell(row=row, column=notes, value=f"=LEN(B{row})")
    else:
        ws.merge_cells(start_row=row - 1, start_column=notes, end_row=row, end_column=notes)
    wb.save(book)
    before = book.read_bytes()
    clusters = json.loads(cli("dedupe", book, "--format", "json").output)["clusters"]
    number = next(n for n, c in enumerate(clusters, 1) if "C-000901" in c["record_ids"])
    result = cli("dedupe", book, "--merge", "--cluster", str(number))
    assert result.exit_code == 2, result.output
    assert ("formula" if structure == "formula" else "merged cells") in result.stderr
    assert book.read_bytes() == before


def test_sync_finds_the_same_duplicates_in_a_second_process(
        book: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Sync looks for duplicates in a forked child while it validates the rest (large
    workbooks); the report and the Duplicates sheet are those of the single-process run."""
    import shutil
    import sys

    from xlcrm import dedupe, jobs

    other = tmp_path / "forked" / book.name
    other.parent.mkdir()
    shutil.copyfile(book, other)
    alone = jobs.sync_workbook(book, today=TODAY)
    forked: list[bool] = []
    result = dedupe.Background.result

    def noted(self: Any) -> Any:
        forked.append(self.process is not None)
        return result(self)

    monkeypatch.setattr(jobs, "PARALLEL_SYNC", 0)
    monkeypatch.setattr(dedupe.Background, "result", noted)
    second = jobs.sync_workbook(other, today=TODAY)
    if sys.platform == "linux" and (os.cpu_count() or 1) > 1:
        assert forked and forked[0]  # the child really found them
    shown = [i.to_json() for i in alone.report.sorted_issues()]
    assert [i.to_json() for i in second.report.sorted_issues()] == shown
    assert any(i["code"] == "possible-duplicate" for i in shown)
    sheets = [python_calamine.CalamineWorkbook.from_path(str(p)).get_sheet_by_name(
        "Duplicates").to_python() for p in (book, other)]
    assert sheets[0] == sheets[1] and len(sheets[0]) > 1


# ---------------------------------------------------------------------------------------------
# People: an ID number or a date of birth kept in an extra column is evidence

def person(cid: str, name: str, **kw: Any) -> dict[str, Any]:
    return c(cid, name, kind="Individual", **kw)


@pytest.mark.parametrize("header", ["SSN", "身份证号", "ID Number"])
def test_an_id_number_in_an_extra_column_identifies_a_person(header: str) -> None:
    # the first name replaced outright: without the number, two people at one address
    home = {"address": "16 Wade Street", "city": "Salisbury", header: "7528902"}
    a = person("C1", "Rosie Reid", **home)
    b = person("C2", "Kyle Reid", **home)
    assert clusters([dict(a, **{header: None}), dict(b, **{header: None})]) == []
    [pair] = find_duplicate_customers(pd.DataFrame([a, b]), "CN", 0.85)[0].pairs
    assert "same ID number 7528902" in pair.reasons


def test_an_id_number_never_equals_a_tax_number() -> None:
    assert clusters([c("C1", "Acme Ltd", tax_id="DE123456789"),
                     person("C2", "Ann Smith", SSN="DE123456789")]) == []


def test_a_birth_date_corroborates_and_a_different_one_contradicts() -> None:
    a = person("C1", "Breana Domkus", address="112 Frome Street", city="Maribyrnong",
               **{"Date of Birth": "19320411"})
    moved = person("C2", "Breana Domkus", address="4 Fenwick Place", city="Maribyrnong",
                   **{"Date of Birth": "1932-04-11"})
    assert clusters([a, moved]) == [["C1", "C2"]]
    from xlcrm.messages import reasons_text

    [pair] = find_duplicate_customers(pd.DataFrame([a, moved]), "CN", 0.85)[0].pairs
    assert "出生日期相同 19320411" in reasons_text(pair.reasons, "zh")
    # the same name and address, born years apart: father and son
    father = person("C1", "John Smith", address="5 Kellway Street", city="Toowong",
                    生日="1950-03-01")
    son = person("C2", "John Smith", address="5 Kellway Street", city="Toowong",
                 生日="1985-07-12")
    assert clusters([father, son]) == []
    # a typo in one digit of the date is still the same person
    typo = dict(son, 生日="1950-03-07")
    assert clusters([father, typo]) == [["C1", "C2"]]


def test_a_record_that_matches_a_head_office_and_its_branch_joins_only_one() -> None:
    head = c("C1", "Northwind Traders GmbH", city="Berlin", phone="030 1234567",
             email="info@northwind.de")
    branch = c("C2", "Northwind Traders GmbH", city="München", phone="089 7654321",
               email="muc@northwind.de")
    again = c("C3", "Northwind Traders", phone="+49 30 1234567", email="ap@northwind.de")
    assert clusters([head, branch]) == []
    assert clusters([head, branch, again]) == [["C1", "C3"]]


def test_one_letter_off_in_a_company_brand_is_no_pair_on_the_name_alone() -> None:
    assert clusters([c("C1", "Tefule Optics AG", city="Köln"),
                     c("C2", "Tefuue Optics AG", city="Köln")]) == []
    # a person's name typed wrong is still the person (FEBRL's typos)
    assert clusters([c("C1", "Gabrielle Langer", kind="Individual", city="Perth"),
                     c("C2", "Gabrielle Lamger", kind="Individual", city="Perth")]) == [
        ["C1", "C2"]]


@pytest.mark.parametrize(("a", "b"), [("Bivarzor Textiles K.K.", "Bivarzor Textiles Corporation"),
                                      ("Sakura Kabushiki Kaisha", "SAKURA KK")])
def test_japanese_legal_forms_fold_away(a: str, b: str) -> None:
    assert name_words(a) == name_words(b)


@pytest.mark.parametrize(("a", "b"), [("Pacific Trading Ltd", "Pacific Trading Co"),
                                      ("Global Services Inc.", "Global Services LLC")])
def test_a_name_of_place_and_trade_words_alone_is_generic(a: str, b: str) -> None:
    assert clusters([c("C1", a, city="上海"), c("C2", b, city="上海")]) == []
    assert clusters([c("C1", a, phone="021-62345678"), c("C2", b, phone="+86 21 6234 5678")]
                    ) == [["C1", "C2"]]
