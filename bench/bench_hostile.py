"""Hostile and odd inputs: each must end in a result or exit 2 within seconds and bounded memory.

    python bench/bench_hostile.py [--out bench/out/hostile]

Builds each input from a fresh `xlcrm init` workbook, runs `xlcrm validate` on it in a child
process and prints the exit code, the wall time and the child's peak memory (VmHWM).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import openpyxl

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from xlcrm.sparse import sheet_parts  # noqa: E402

OUT = ROOT / "bench" / "out" / "hostile"


def fresh(path: Path, names: tuple[str, ...] = ("Acme Ltd", "Globex GmbH", "Initech")) -> Path:
    subprocess.run([sys.executable, "-m", "xlcrm", "init", str(path), "--force"], check=True,
                   capture_output=True)
    book = openpyxl.load_workbook(path)
    ws = book.worksheets[0]
    for row, name in enumerate(names, start=2):
        ws.cell(row=row, column=2, value=name)
    book.save(path)
    return path


def far_cell(where: str) -> Callable[[Path], Path]:
    def make(path: Path) -> Path:
        fresh(path)
        book = openpyxl.load_workbook(path)
        book.worksheets[0][where] = "stray"
        book.save(path)
        return path

    return make


def replace_part(path: Path, member: str, writer: Callable[[Callable[[bytes], None]], None]
                 ) -> None:
    """Rewrite one zip member by streaming chunks into it (the rest copied as it is)."""
    temp = path.with_suffix(".tmp")
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(temp, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            if info.filename == member:
                target = zipfile.ZipInfo(member, info.date_time)
                target.compress_type = zipfile.ZIP_DEFLATED
                with dst.open(target, "w", force_zip64=True) as handle:
                    writer(handle.write)
            else:
                dst.writestr(info, src.read(info))
    temp.replace(path)


def big_sheet(rows: int, text: bytes) -> Callable[[Path], Path]:
    """The Customers sheet replaced by `rows` rows whose Name is `text` (compression follows
    from how repetitive it is)."""

    def make(path: Path) -> Path:
        fresh(path)
        with zipfile.ZipFile(path) as archive:
            member = sheet_parts(archive)["Customers"]
            head = archive.read(member).split(b"<sheetData>")[0]

        def write(put: Callable[[bytes], None]) -> None:
            put(head + b"<sheetData><row r=\"1\"><c r=\"A1\" t=\"inlineStr\"><is><t>CustomerID"
                b"</t></is></c><c r=\"B1\" t=\"inlineStr\"><is><t>Name</t></is></c></row>")
            chunk = []
            for row in range(2, rows + 2):
                chunk.append(b'<row r="%d"><c r="B%d" t="inlineStr"><is><t>%s</t></is></c></row>'
                             % (row, row, text))
                if len(chunk) == 10_000:
                    put(b"".join(chunk))
                    chunk = []
            put(b"".join(chunk) + b"</sheetData></worksheet>")

        replace_part(path, member, write)
        return path

    return make


CASES: dict[str, Callable[[Path], Path]] = {
    "value at XFD1048576": far_cell("XFD1048576"),
    "value at V1048576": far_cell("V1048576"),
    "9M names": big_sheet(9_000_000, b"Acme Trading Company Limited"),
    "3M one-letter names": big_sheet(3_000_000, b"A"),
    "2.5M long names": big_sheet(2_500_000, b"x" * 360),
}


def run(path: Path) -> tuple[int, float, int, str]:
    started = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", "xlcrm", "validate", str(path)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    status = Path(f"/proc/{child.pid}/status")
    while child.poll() is None:
        try:
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]) // 1024)
        except OSError:
            pass
        time.sleep(0.05)
    error = (child.stderr.read().decode() if child.stderr else "").strip().splitlines()
    return child.returncode, time.perf_counter() - started, peak, (error[-1] if error else "")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"{'input':<22} {'file':>7} {'unzipped':>9} {'ratio':>6} {'exit':>4} {'seconds':>8} "
          f"{'peak MiB':>9}  message")
    for number, (name, make) in enumerate(CASES.items()):
        path = make(args.out / f"hostile{number}.xlsx")
        with zipfile.ZipFile(path) as archive:
            biggest = max(archive.infolist(), key=lambda i: i.file_size)
        ratio = biggest.file_size / max(biggest.compress_size, 1)
        code, seconds, peak, message = run(path)
        print(f"{name:<22} {path.stat().st_size / 2**20:>6.1f}M "
              f"{sum(i.file_size for i in zipfile.ZipFile(path).infolist()) / 2**20:>8.0f}M "
              f"{ratio:>6.0f} {code:>4} {seconds:>8.1f} {peak:>9}  {message[:80]}")


if __name__ == "__main__":
    main()
