"""`xlcrm import` of a big mixed sheet into a bench workbook, beside a calamine read of both.

    python bench/bench_import.py M [--rows 100000] [--rounds 3]

The source is an .xlsx a team might keep: one row per deal with the customer's company,
phone and city repeated on every row (mixed customer-and-deal, 简道云-style Chinese headers);
70 % of the rows are deals of the workbook's own customers (their phone typed another way),
30 % of new companies with several deals each; amounts typed as text (`1.2万`, `¥12,000`),
dates as `2026年11月3日`. Each step runs in its own process: a calamine read of every sheet of
the workbook and of the source; the dry run (`xlcrm import` without `--apply`); the import
with `--apply` (the write, the change log and what undo needs).

Target (issue 16): dry run and apply each within 3× the calamine read of source + workbook.
This machine's speed drifts by a fifth within minutes, so each step is divided by a calamine
read made right before it, in `--rounds` rounds (3 by default); the median is the figure.
"""

from __future__ import annotations

import random
import shutil
import statistics
import sys
import tempfile
import textwrap
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from generate import bench_args  # noqa: E402
from isolated import run_step  # noqa: E402

ARGS = 'book, source = Path(argv[0]), Path(argv[1])\n'
STEPS = {
    "calamine": """
        import python_calamine
        cells = 0
        for path in (book, source):
            wb = python_calamine.CalamineWorkbook.from_path(str(path))
            cells += sum(len(r) for n in wb.sheet_names
                         for r in wb.get_sheet_by_name(n).to_python())
    """,
    "dry": """
        from xlcrm.jobs import import_workbook
        result = import_workbook(book, source)
        extra = {"counts": result.plan.counts(), "conflicts": len(result.plan.conflicts)}
    """,
    "apply": """
        from xlcrm.jobs import import_workbook
        result = import_workbook(book, source, apply=True)
        extra = {"counts": result.plan.counts(), "applied": result.applied}
    """,
    "sync": """
        from xlcrm.jobs import sync_workbook
        sync_workbook(book)
    """,
}


def make_source(book: Path, target: Path, rows: int, seed: int = 5) -> None:
    import python_calamine
    from openpyxl import Workbook

    rng = random.Random(seed)
    wb = python_calamine.CalamineWorkbook.from_path(str(book))
    customers = wb.get_sheet_by_name("Customers").to_python()
    header = customers[0]
    name_at, phone_at, city_at = (header.index(h) for h in ("Name", "Phone", "City"))
    known = [r for r in customers[1:] if r[name_at]]
    new_companies = [(f"新客户{n:05d}科技有限公司", f"139{n:08d}", rng.choice(
        ["上海", "北京", "深圳", "杭州"])) for n in range(rows * 3 // 100)]
    out = Workbook(write_only=True)
    ws = out.create_sheet("商机导出")
    ws.append(["商机导出（2026年）"])
    ws.append(["客户名称", "联系电话", "城市", "商机名称", "销售阶段", "预计成交金额",
               "预计签单日期", "负责人"])
    stages = ["线索", "需求确认", "方案", "报价", "谈判", "赢单", "输单"]
    for n in range(rows):
        if rng.random() < 0.7:
            record = rng.choice(known)
            company, phone, city = record[name_at], str(record[phone_at]).replace(" ", "-"), \
                record[city_at]
        else:
            company, phone, city = rng.choice(new_companies)
        amount = rng.choice(["1.2万", "¥12,000", "8000", "3.5万", "(1,200)"])
        day = f"2027年{rng.randint(1, 12)}月{rng.randint(1, 28)}日"
        ws.append([company, phone, city, f"项目 {n:06d}", rng.choice(stages), amount, day,
                   rng.choice(["Alice Chen", "Bob Li", "Zhao Liu"])])
    out.save(target)


def run(step: str, book: Path, source: Path) -> dict[str, object]:
    return run_step(ARGS + textwrap.dedent(STEPS[step]), str(book), str(source))


def main() -> None:
    def extra(parser: object) -> None:
        parser.add_argument("--rows", type=int, default=100_000)  # type: ignore[attr-defined]
        parser.add_argument("--rounds", type=int, default=3)  # type: ignore[attr-defined]

    args, original = bench_args(__doc__, extra)
    with tempfile.TemporaryDirectory() as folder:
        book = Path(folder) / original.name
        shutil.copyfile(original, book)
        run("sync", book, book)  # IDs and the change log, as a team's workbook has them
        source = Path(folder) / "source.xlsx"
        make_source(book, source, args.rows)
        history = book.parent / ".xlcrm"
        pristine = Path(folder) / "pristine"
        shutil.copytree(history, pristine / ".xlcrm")
        shutil.copyfile(book, pristine / book.name)
        ratios: dict[str, list[float]] = {"dry run": [], "--apply": []}
        print(f"{original.name} + a {args.rows:,}-row mixed source; each step beside a "
              "calamine read of both made right before it")
        for round_number in range(1, args.rounds + 1):
            for label, step in (("dry run", "dry"), ("--apply", "apply")):
                shutil.rmtree(history)  # every round imports into the same workbook
                shutil.copytree(pristine / ".xlcrm", history)
                shutil.copyfile(pristine / book.name, book)
                base = float(run("calamine", book, source)["seconds"])  # type: ignore[arg-type]
                figures = run(step, book, source)
                seconds = float(figures["seconds"])  # type: ignore[arg-type]
                ratios[label].append(seconds / base)
                print(f"round {round_number}  {label:<10}{seconds:7.2f} s  calamine "
                      f"{base:5.2f} s  {seconds / base:5.2f}x  peak "
                      f"{float(figures['peak_mb']):,.0f} MB  {figures['counts']}")  # type: ignore[arg-type]
    for label, found in ratios.items():
        print(f"{label:<10} median {statistics.median(found):.2f}x "
              f"(of {', '.join(f'{r:.2f}' for r in found)})")
    print("target: each <= 3x the calamine read of source + workbook")


if __name__ == "__main__":
    main()
