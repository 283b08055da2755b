"""Accuracy, speed and memory of the duplicate-customer matcher on a generated zh/en CRM set.

    python bench/bench_dedupe.py [--sizes 10000 100000] [--lang both]

The set: N realistic customers from `xlcrm.sample` (half Chinese, half English names), plus
planted duplicates of 5 % of them, each entered the way a second rep would: another legal form
or script (traditional characters), a region prefix or suffix in brackets, different case and
punctuation, the phone typed another way, another mailbox at the same company domain. Hard
negatives are whatever the generator repeats by itself (the same brand in two cities, with
other phones and tax IDs) plus planted look-alikes (one character of the name changed).
Precision, recall and F1 are over pairs: a planted duplicate must come out in one cluster with
its original; any other pair in a cluster is a false positive.
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import time
from itertools import combinations
from pathlib import Path

import opencc
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from xlcrm.dedupe import find_duplicate_customers  # noqa: E402
from xlcrm.normalize import name_words  # noqa: E402
from xlcrm.sample import sample_records  # noqa: E402

LEGAL = {"有限公司": "股份有限公司", "股份有限公司": "有限公司", "Ltd": "Limited",
         "Limited": "Ltd.", "Inc": "Incorporated", "LLC": "L.L.C.", "GmbH": "GmbH.",
         "Co., Ltd": "Company Limited", "Corporation": "Corp."}


_SYLLABLES = [a + b for a in "bcdfghklmnprstvz" for b in ("a", "e", "i", "o", "u", "an", "or")]
_HANZI = ("安宝博成达德东方丰富光广国海和恒华环汇佳嘉金锦晶君凯康科蓝乐力立隆美明南宁鹏平"
          "启清荣瑞润三盛世泰天通同万伟文祥新信星兴亚扬一益英永优元远跃正中众卓")


def generate(n: int, seed: int = 1, diverse: bool = False
             ) -> tuple[pd.DataFrame, set[tuple[str, str]]]:
    rng = random.Random(seed)
    half = n // 2
    rows = []
    seen: set[object] = set()
    for lang, count, lang_seed in (("zh", half, seed), ("en", n - half, seed + 1)):
        data = sample_records(count, lang, seed=lang_seed, mistakes=False, opportunities=0,
                              interactions=0)
        for record in data.customers:
            if diverse:  # more brands than the sample pools hold, for the speed runs
                name = str(record["name"])
                extra = "".join(rng.choice(_SYLLABLES) for _ in range(2))
                if any("\u4e00" <= ch <= "\u9fff" for ch in name):
                    cjk = "".join(rng.choice(_HANZI) for _ in range(2))
                    key = name_words(name)
                    record["name"] = name.replace(key[:2], key[:2] + cjk, 1) if key else name
                else:
                    record["name"] = f"{extra.title()} {name}"
                if record.get("email") and "@" in str(record["email"]):
                    user, domain = str(record["email"]).split("@")
                    record["email"] = f"{user}@{extra}{domain}"
            # the generator repeats phones, e-mails and tax IDs by chance, and a company
            # name in one city: such a record is one customer twice, so keep the first
            marks = {("phone", "".join(ch for ch in str(record.get("phone")) if ch.isdigit())[-8:]),
                     ("email", record.get("email")), ("tax", record.get("tax_id")),
                     ("name", name_words(record.get("name")), record.get("city"))}
            if marks & seen:
                continue
            seen |= marks
            record["customer_id"] = f"{lang}-{record['customer_id']}"
            rows.append(record)
    to_trad = opencc.OpenCC("s2t")
    truth: set[tuple[str, str]] = set()
    extra = []
    for number, original in enumerate(rng.sample(rows, max(1, len(rows) // 20))):
        copy = dict(original)
        copy["customer_id"] = f"DUP-{number}"
        name = str(original["name"])
        for old, new in LEGAL.items():
            if name.endswith(old):
                name = name[: -len(old)] + new
                break
        change = rng.random()
        if change < 0.3:
            name = to_trad.convert(name)
        elif change < 0.5:
            name = f"（{original.get('city') or '上海'}）{name}" if any(
                "\u4e00" <= ch <= "\u9fff" for ch in name) else name.upper()
        copy["name"] = name
        phone = str(original.get("phone") or "")
        if phone and rng.random() < 0.7:
            copy["phone"] = phone.replace(" ", "-")
        else:
            copy["phone"] = None
        email = str(original.get("email") or "")
        if "@" in email:
            copy["email"] = f"contact{number}@{email.split('@')[1]}"
        copy["tax_id"] = original.get("tax_id") if rng.random() < 0.3 else None
        extra.append(copy)
        truth.add(tuple(sorted((str(original["customer_id"]), copy["customer_id"]))))
    firsts = sorted({str(r["name"]).split()[0] for r in rows if " " in str(r["name"])})
    for number, original in enumerate(rng.sample(rows, max(1, len(rows) // 50))):
        fake = dict(original)
        name = str(original["name"])
        if any("\u4e00" <= ch <= "\u9fff" for ch in name):  # 华信 → 华讯: one character
            key = name_words(name)
            position = name.find(key[:2]) + 1 if key[:2] in name else 0
            name = name[:position] + ("鹏" if name[position] != "鹏" else "讯") + name[
                position + 1:]
        else:  # X Capital → Y Capital: another brand with the same trade words
            words = name.split()
            words[0] = rng.choice([f for f in firsts if f != words[0]] or ["Other"])
            name = " ".join(words)
        if ("name", name_words(name), original.get("city")) in seen:
            continue  # the look-alike is a real customer of the set: not a negative
        fake.update(customer_id=f"LOOK-{number}", name=name, phone=None, email=None,
                    tax_id=None)
        extra.append(fake)
    frame = pd.DataFrame(rows + extra).reset_index(drop=True)
    frame["_row"] = range(2, len(frame) + 2)
    return frame, truth


def replicate(frame: pd.DataFrame, truth: set[tuple[str, str]], times: int, seed: int = 2
              ) -> tuple[pd.DataFrame, set[tuple[str, str]]]:
    """`times` copies of a generated set, each copy's customers made distinct (another brand
    syllable, other phone digits, another mail domain, no tax ID), planted pairs kept."""
    rng = random.Random(seed)
    copies, pairs = [frame], set(truth)
    for k in range(1, times):
        syllable = "".join(rng.choice(_SYLLABLES) for _ in range(3))
        copy = frame.copy()
        copy["customer_id"] = copy["customer_id"].astype(str) + f"~{k}"
        copy["name"] = syllable.title() + " " + copy["name"].astype(str)
        digit, tag = k % 10, syllable
        copy["phone"] = copy["phone"].map(
            lambda v, d=digit: None if v is None or v != v else f"{v}{d}")
        copy["email"] = copy["email"].map(
            lambda v, t=tag: None if not isinstance(v, str) or "@" not in v else f"{v}{t}.cn")
        copy["tax_id"] = None
        copies.append(copy)
        pairs |= {(f"{a}~{k}", f"{b}~{k}") for a, b in truth}
    out = pd.concat(copies, ignore_index=True)
    out["_row"] = range(2, len(out) + 2)
    return out, {tuple(sorted(p)) for p in pairs}  # type: ignore[misc]


def score(frame: pd.DataFrame, truth: set[tuple[str, str]]) -> tuple[float, float, float, int]:
    started = time.perf_counter()
    matches = find_duplicate_customers(frame, "CN", 0.85)
    seconds = time.perf_counter() - started
    ids = frame["customer_id"]
    found = {tuple(sorted((str(ids[a]), str(ids[b]))))
             for m in matches for a, b in combinations(m.indices, 2)}
    hits = len(found & truth)
    precision = hits / len(found) if found else 1.0
    recall = hits / len(truth) if truth else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1, round(seconds * 100) / 100  # type: ignore[return-value]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--diverse", action="store_true", help="Add random syllables to the "
                        "names, so that large sizes hold that many distinct companies.")
    parser.add_argument("--copies", type=int, default=1, help="Replicate each generated set "
                        "this many times (a million customers without generating a million).")
    args = parser.parse_args()
    print(f"{'customers':>10} {'pairs':>7} {'P':>7} {'R':>7} {'F1':>7} {'seconds':>8} "
          f"{'peak MB':>8}   (targets: F1 >= 0.97; 100k < 10 s; 1M < 30 s, 1.8 GB)")
    for size in args.sizes:
        frame, truth = generate(size, diverse=args.diverse)
        if args.copies > 1:
            frame, truth = replicate(frame, truth, args.copies)
        precision, recall, f1, seconds = score(frame, truth)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{len(frame):>10,} {len(truth):>7,} {precision:>7.4f} {recall:>7.4f} "
              f"{f1:>7.4f} {seconds:>8.2f} {peak:>8.0f}")


if __name__ == "__main__":
    main()
