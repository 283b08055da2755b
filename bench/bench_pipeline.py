"""Opportunity duplicates in a pipeline of heavy repeat business: precision, recall, speed.

    python bench/bench_pipeline.py [--accounts 40] [--deals 220] [--doubles 40] [--seed 1]

A generated pipeline like a real export: tens of accounts with hundreds of deals each over
years, 35 agents, a few product lines per account, each re-ordered on a cadence (every few
weeks over seven years, a few days early or late) at the same price (the same title and
amount), most
deals won or lost with their close dates, 15 % without, the latest of each line still open;
plus true double entries: a deal typed again (as it is, a day later,
by the other rep, with the title's case or spacing changed, the amount typed as text).
Counts each true double entry found (recall) and each flagged pair that is one (precision),
and checks that none of the "Deal won" interactions promotion would write is flagged.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from xlcrm.dedupe import (  # noqa: E402
    find_duplicate_interactions,
    find_duplicate_opportunities,
)
from xlcrm.settings import default_settings  # noqa: E402

PRODUCTS = ("Annual license", "Support renewal", "Spare parts", "Consumables", "Training",
            "Hardware order", "Maintenance contract", "Cloud subscription")


def pipeline(accounts: int, deals: int, doubles: int, seed: int
             ) -> tuple[pd.DataFrame, set[frozenset[str]]]:
    rng = random.Random(seed)
    agents = [f"Agent {i}" for i in range(35)]
    rows = []
    start = dt.date(2019, 1, 1)
    for account in range(accounts):
        lines = rng.sample(PRODUCTS, rng.randint(2, 5))
        reps = rng.sample(agents, 3)
        cadence = max(10, 7 * 365 * len(lines) // deals)  # days between re-orders
        made = 0
        for line, product in enumerate(lines):  # each line re-ordered on its cadence
            price = rng.choice([800, 1200, 5000, 12000, 30000])
            day = start + dt.timedelta(days=rng.randint(0, cadence))
            share = deals // len(lines) + (1 if line < deals % len(lines) else 0)
            for n in range(share):
                created = day + dt.timedelta(days=rng.randint(-3, 3))
                latest = n == share - 1
                stage = (rng.choice(["Proposal", "Negotiation"]) if latest
                         else rng.choices(["Won", "Lost"], [85, 15])[0])
                closed = (created + dt.timedelta(days=rng.randint(2, min(cadence - 8, 20)))
                          if stage in ("Won", "Lost") and rng.random() < 0.85 else None)
                title = (product if rng.random() < 0.7
                         else f"{product} #{rng.randint(1000, 9999)}")
                rows.append({"opportunity_id": f"O{account:03d}-{made:04d}",
                             "customer_id": f"C-{account:03d}", "company": None,
                             "title": title, "stage": stage,
                             "amount": price if rng.random() < 0.8
                             else price * rng.choice([2, 3, 0.5]), "currency": None,
                             "owner": rng.choice(reps), "created_at": created,
                             "expected_close": created + dt.timedelta(days=30),
                             "closed_at": closed})
                made += 1
                day += dt.timedelta(days=cadence)
    truth = set()
    for k, original in enumerate(rng.sample(rows, doubles)):
        copy = {**original, "opportunity_id": f"DUP-{k:03d}"}
        variant = k % 5
        if variant == 1:
            copy["created_at"] = original["created_at"] + dt.timedelta(days=1)
        elif variant == 2:
            copy["owner"] = "Agent 34" if original["owner"] != "Agent 34" else "Agent 33"
        elif variant == 3:
            copy["title"] = f" {original['title'].upper()} "
        elif variant == 4:
            copy["amount"] = f"{original['amount']:,}"
        rows.append(copy)
        truth.add(frozenset((original["opportunity_id"], copy["opportunity_id"])))
    frame = pd.DataFrame(rows, dtype=object)
    frame["_row"] = range(2, len(frame) + 2)
    return frame, truth


def deal_won_interactions(frame: pd.DataFrame) -> pd.DataFrame:
    won = frame[frame["stage"] == "Won"]
    out = pd.DataFrame({"customer_id": won["customer_id"], "opportunity_id":
                        won["opportunity_id"], "date": won["closed_at"].fillna(
                            won["created_at"]), "kind": "Other",
                        "summary": [f"Deal won: {t}" for t in won["title"]],
                        "outcome": "Deal won"})
    out["_row"] = range(2, len(out) + 2)
    return out.reset_index(drop=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=40)
    parser.add_argument("--deals", type=int, default=220)
    parser.add_argument("--doubles", type=int, default=40)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    frame, truth = pipeline(args.accounts, args.deals, args.doubles, args.seed)
    closed = default_settings("en").closed_stages()
    started = time.perf_counter()
    found = find_duplicate_opportunities(frame, 0.85, closed)
    seconds = time.perf_counter() - started
    ids = frame["opportunity_id"]
    flagged = {frozenset((ids[p.a], ids[p.b])) for m in found for p in m.pairs}
    hits = len(flagged & truth)
    precision = hits / len(flagged) if flagged else 1.0
    recall = hits / len(truth) if truth else 1.0
    members = sum(len(m.indices) for m in found)
    engine = deal_won_interactions(frame)
    engine_flagged = sum(len(m.indices) for m in find_duplicate_interactions(engine))
    print(f"{len(frame):,} deals in {args.accounts} accounts, {len(truth)} true double "
          f"entries: {len(flagged)} pairs flagged ({members} deals, "
          f"{members / len(frame):.1%}); precision {precision:.3f}, recall {recall:.3f}, "
          f"in {seconds:.2f} s")
    print(f"{len(engine):,} Deal won interactions: {engine_flagged} flagged")


if __name__ == "__main__":
    main()
