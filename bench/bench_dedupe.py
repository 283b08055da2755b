"""Accuracy, speed and memory of the duplicate-customer matcher on a generated zh/en CRM set.

    python bench/bench_dedupe.py [--diverse] [--sizes 10000 100000] [--copies 10]

Each size is matched in a fresh process that loads only the columns the matcher reads, so
"peak MB" is that process (the customers plus the matcher; "frame MB" is the customers alone)
and "worker MB" the forked worker that shares the key folding on Linux (its pages are largely
shared with the parent, so the two do not add up).

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
import gc
import json
import pickle
import random
import resource
import subprocess
import sys
import tempfile
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


MATCHER_COLUMNS = ["customer_id", "name", "kind", "phone", "email", "tax_id", "address",
                   "city", "_row"]


def score(frame: pd.DataFrame, truth: set[tuple[str, str]]) -> dict[str, float]:
    """The matcher on `frame` (timed): precision, recall and F1 over pairs of customer IDs
    (every pair within a cluster) against `truth`, and seconds."""
    started = time.perf_counter()
    matches = find_duplicate_customers(frame, "CN", 0.85)
    seconds = time.perf_counter() - started
    ids = frame["customer_id"]
    found = {tuple(sorted((str(ids[a]), str(ids[b]))))
             for m in matches for a, b in combinations(m.indices, 2)}
    precision, recall, f1 = prf(found, truth)  # type: ignore[arg-type]
    return {"precision": precision, "recall": recall, "f1": f1, "seconds": seconds}


def prf(found: set[tuple[str, str]], truth: set[tuple[str, str]]) -> tuple[float, float, float]:
    """Precision, recall and F1 of `found` pairs against `truth`."""
    hits = len(found & truth)
    p = hits / len(found) if found else 1.0
    r = hits / len(truth) if truth else 1.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def run_file(path: str) -> None:
    """The measured part, in a fresh process: load the customers, match, report. Its peak
    memory is the frame plus the matcher, not the generator's."""
    with open(path, "rb") as handle:
        frame, truth = pickle.load(handle)
    gc.collect()
    loaded = _peak_mb()
    result = score(frame, truth)
    result["loaded_mb"] = loaded
    result["peak_mb"] = _peak_mb()
    result["worker_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(json.dumps(result))


def _peak_mb() -> float:
    """This process's peak resident memory in MiB. On Linux from /proc (VmHWM): getrusage's
    maxrss survives exec, so a process started by a large one (this benchmark's generator)
    would report the generator's size."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--diverse", action="store_true", help="Add random syllables to the "
                        "names, so that large sizes hold that many distinct companies.")
    parser.add_argument("--copies", type=int, default=1, help="Replicate each generated set "
                        "this many times (a million customers without generating a million).")
    parser.add_argument("--run", help=argparse.SUPPRESS)  # the measured child process
    args = parser.parse_args()
    if args.run:
        run_file(args.run)
        return
    print(f"{'customers':>10} {'pairs':>7} {'P':>7} {'R':>7} {'F1':>7} {'seconds':>8} "
          f"{'peak MB':>8} {'frame MB':>8} {'worker MB':>9}")
    print("  targets: F1 >= 0.97; 100k < 10 s; 1M < 30 s and 1.8 GB "
          "(splink 5: 1M in 31 s, 1.8 GB)")
    for size in args.sizes:
        frame, truth = generate(size, diverse=args.diverse)
        if args.copies > 1:
            frame, truth = replicate(frame, truth, args.copies)
        with tempfile.TemporaryDirectory() as folder:
            path = str(Path(folder) / "customers.pickle")
            with open(path, "wb") as handle:
                pickle.dump((frame[MATCHER_COLUMNS].copy(), truth), handle)
            rows = len(frame)
            del frame
            gc.collect()
            out = subprocess.run([sys.executable, __file__, "--run", path], check=True,
                                 capture_output=True, text=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        print(f"{rows:>10,} {len(truth):>7,} {r['precision']:>7.4f} {r['recall']:>7.4f} "
              f"{r['f1']:>7.4f} {r['seconds']:>8.2f} {r['peak_mb']:>8.0f} "
              f"{r['loaded_mb']:>8.0f} {r['worker_mb']:>9.0f}")


if __name__ == "__main__":
    main()
