"""The duplicate-customer matcher on zh/en companies from eight countries, with numbers typed
without their country codes and mailboxes on shared company domains.

    python bench/bench_companies.py [--companies 3000] [--seed 7]

The set is built here, not from `xlcrm.sample` (which the matcher's own tests grew up with):
companies in the US, Germany, the UK, France, Japan, Hong Kong, Singapore and China, each with
a name in its own style and legal form, a phone as a local rep types it (national format, no
country code), a mailbox at the company's domain or at free mail (gmail.com, qq.com, 163.com,
outlook.com), a city, and for Chinese companies sometimes a unified social credit code.

True duplicates (8 %): the company entered again by another rep, the way people do it: the
legal form dropped, changed or spelled out; upper case; for Chinese names the region in
brackets or traditional characters; the phone with its country code (`+49 30 …`), in other
spacing, or left out; another mailbox at the company domain, or none.

Hard negatives: branches (the same brand and company domain in another city, with another
phone: not one customer), look-alike brands (one letter changed, or one Chinese character),
companies that share only a free-mail domain, generic names (`Pacific Trading`, 园林股份 /
杭州园林), listed companies' stock-status markers (`*ST阳光` / `ST阳光(退)`, one name folded,
two companies with different numbers). Settings region: CN, as a Chinese team's workbook has.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

import opencc
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_dedupe import score  # noqa: E402 - its path setup imports xlcrm too

# region: calling code, cities with their (trunk-prefixed) area codes and subscriber lengths,
# legal forms, the domain's ending
COUNTRIES = {
    "US": ("1", [("New York", "212", 7), ("San Francisco", "415", 7), ("Chicago", "312", 7),
                 ("Boston", "617", 7), ("Seattle", "206", 7), ("Austin", "512", 7)],
           ["Inc.", "LLC", "Corp.", "Corporation", "Inc"], "com"),
    "DE": ("49", [("Berlin", "030", 7), ("München", "089", 8), ("Hamburg", "040", 8),
                  ("Köln", "0221", 7), ("Frankfurt", "069", 8)],
           ["GmbH", "AG", "GmbH & Co. KG"], "de"),
    "GB": ("44", [("London", "020", 8), ("Manchester", "0161", 7), ("Leeds", "0113", 7),
                  ("Bristol", "0117", 7)], ["Ltd", "Limited", "plc"], "co.uk"),
    "FR": ("33", [("Paris", "01", 8), ("Lyon", "04", 8), ("Marseille", "04", 8),
                  ("Toulouse", "05", 8)], ["SARL", "SA", "SAS"], "fr"),
    "JP": ("81", [("Tokyo", "03", 8), ("Osaka", "06", 8), ("Nagoya", "052", 7)],
           ["K.K.", "Co., Ltd.", "Corporation"], "co.jp"),
    "HK": ("852", [("Hong Kong", "", 8)], ["Limited", "Ltd"], "com.hk"),
    "SG": ("65", [("Singapore", "", 8)], ["Pte Ltd", "Pte. Ltd."], "com.sg"),
    "CN": ("86", [("上海", "021", 8), ("北京", "010", 8), ("深圳", "0755", 8), ("杭州", "0571", 8),
                  ("广州", "020", 8), ("成都", "028", 8)], ["有限公司", "股份有限公司"], "cn"),
}
SYLLABLES = [a + b for a in "bdfgklmnprstvz" for b in ("a", "e", "i", "o", "u", "ar", "en", "or")]
TRADES = ["Logistics", "Foods", "Robotics", "Textiles", "Analytics", "Instruments", "Optics",
          "Medical", "Packaging", "Ceramics", "Marine", "Pharma", "Chemicals", "Motors"]
HANZI = ("安宝博成达德东方丰富光广国海和恒华环汇佳嘉金锦晶君凯康蓝乐力立隆美明南宁"
         "鹏平启清荣瑞润盛泰通万伟祥星兴扬益英永优元远跃卓")
TRADES_ZH = ["科技", "贸易", "电子", "物流", "食品", "机械", "医药", "包装", "化工", "材料"]
FREE = ["gmail.com", "qq.com", "163.com", "outlook.com"]
STOCK = [("*ST阳光", "ST阳光(退)"), ("*ST华新", "华新股份"), ("ST天龙", "*ST天龙")]
GENERIC = [("Pacific Trading Ltd", "Pacific Trading Co"), ("园林股份", "杭州园林"),
           ("Global Services Inc.", "Global Services LLC"), ("科技有限公司", "上海科技")]


def phone(rng: random.Random, region: str, area: str, length: int) -> tuple[str, str]:
    """A number as a local rep types it, and the same with its country code."""
    code = COUNTRIES[region][0]
    digits = str(rng.randint(2, 9)) + "".join(str(rng.randint(0, 9)) for _ in range(length - 1))
    if region == "US":
        local = rng.choice([f"({area}) {digits[:3]}-{digits[3:]}", f"{area}-{digits[:3]}-"
                            f"{digits[3:]}", f"{area}.{digits[:3]}.{digits[3:]}"])
        return local, f"+1 {area} {digits[:3]} {digits[3:]}"
    if region == "CN" and rng.random() < 0.4:  # a mobile
        mobile = "1" + rng.choice("3589") + "".join(str(rng.randint(0, 9)) for _ in range(9))
        return f"{mobile[:3]} {mobile[3:7]} {mobile[7:]}", f"+86 {mobile}"
    half = len(digits) // 2
    local = f"{area} {digits[:half]} {digits[half:]}".strip() if area else (
        f"{digits[:4]} {digits[4:]}")
    if region == "JP":
        local = f"{area}-{digits[:4]}-{digits[4:]}"
    return local, f"+{code} {area.lstrip('0')} {digits}".replace("  ", " ")


def company(rng: random.Random, region: str) -> dict[str, object]:
    _, cities, forms, tld = COUNTRIES[region]
    city, area, length = rng.choice(cities)
    local, international = phone(rng, region, area, length)
    if region == "CN":
        brand = "".join(rng.sample(HANZI, 2))
        name = f"{city}{brand}{rng.choice(TRADES_ZH)}{rng.choice(forms)}"
        domain = "".join(rng.choice(SYLLABLES) for _ in range(2)) + "." + tld
    else:
        brand = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 3))).title()
        name = f"{brand} {rng.choice(TRADES)} {rng.choice(forms)}"
        domain = f"{brand.lower()}.{tld}"
    mailbox = rng.choice(["info", "sales", "contact", "office", "hello"])
    email = (f"{mailbox}@{domain}" if rng.random() < 0.7 else
             f"{brand.lower() if brand.isascii() else 'user'}{rng.randint(1, 999)}@"
             f"{rng.choice(FREE)}")
    return {"name": name, "city": city, "phone": local, "international": international,
            "email": email, "domain": domain, "region": region, "brand": brand}


def entered_again(rng: random.Random, record: dict[str, object], to_trad: opencc.OpenCC
                  ) -> dict[str, object]:
    """The same company typed by another rep."""
    copy = dict(record)
    name = str(record["name"])
    forms = COUNTRIES[str(record["region"])][2]
    if record["region"] == "CN":
        city = str(record["city"])
        change = rng.random()
        if change < 0.35:
            name = to_trad.convert(name)
        elif change < 0.7:
            name = name.removeprefix(city).replace("股份有限公司", "有限公司", 1)
            name = name.replace("有限公司", f"（{city}）有限公司", 1)
        else:
            name = name.removeprefix(city)
    else:
        words = name.split(" ")
        for form in sorted(forms, key=len, reverse=True):
            if name.endswith(" " + form):
                words = name[: -len(form) - 1].split(" ")
                break
        change = rng.random()
        name = " ".join(words) + ("" if change < 0.3 else " " + rng.choice(forms))
        if rng.random() < 0.2:
            name = name.upper()
    copy["name"] = name
    how = rng.random()
    copy["phone"] = (record["international"] if how < 0.45 else
                     str(record["phone"]).replace(" ", "") if how < 0.7 else None)
    if "@" in str(record["email"]) and str(record["email"]).split("@")[1] == record["domain"]:
        copy["email"] = (f"{rng.choice(['purchasing', 'ap', 'ceo', 'support'])}@"
                         f"{record['domain']}" if rng.random() < 0.8 else None)
    elif copy["phone"] is None:
        copy["phone"] = record["international"]  # something to go on besides the name
    if rng.random() < 0.2:
        copy["city"] = None
    return copy


def generate(n: int, seed: int) -> tuple[pd.DataFrame, set[tuple[str, str]]]:
    rng = random.Random(seed)
    to_trad = opencc.OpenCC("s2t")
    regions = list(COUNTRIES)
    rows: list[dict[str, object]] = []
    seen_names: set[str] = set()
    while len(rows) < n:
        record = company(rng, rng.choice(regions))
        if record["brand"] in seen_names:
            continue
        seen_names.add(str(record["brand"]))
        record["customer_id"] = f"C{len(rows):05d}"
        rows.append(record)
    truth: set[tuple[str, str]] = set()
    extra: list[dict[str, object]] = []
    for k, original in enumerate(rng.sample(rows, n * 8 // 100)):
        copy = entered_again(rng, original, to_trad)
        copy["customer_id"] = f"DUP{k:04d}"
        extra.append(copy)
        truth.add(tuple(sorted((str(original["customer_id"]), str(copy["customer_id"])))))
    for k, original in enumerate(rng.sample(rows, n * 3 // 100)):  # a branch elsewhere
        region = str(original["region"])
        others = [c for c in COUNTRIES[region][1] if c[0] != original["city"]]
        if not others or "@" not in str(original["email"]):
            continue
        city, area, length = rng.choice(others)
        local, _ = phone(rng, region, area, length)
        extra.append({**original, "customer_id": f"BRANCH{k:04d}", "city": city,
                      "phone": local, "email": f"{city.lower()[:3]}@{original['domain']}"})
    for k, original in enumerate(rng.sample(rows, n * 3 // 100)):  # a look-alike brand
        name = str(original["name"])
        brand = str(original["brand"])
        if brand.isascii():
            at = rng.randrange(1, len(brand))
            other = brand[:at] + rng.choice([ch for ch in "aeioux" if ch != brand[at]]) + \
                brand[at + 1:]
        else:
            other = brand[0] + rng.choice([ch for ch in HANZI if ch != brand[1]])
        if other in seen_names:
            continue
        local, _ = phone(rng, str(original["region"]), "", 8)
        extra.append({**original, "customer_id": f"LOOK{k:04d}",
                      "name": name.replace(brand, other, 1), "phone": None, "email": None})
    for k, (a, b) in enumerate(STOCK + GENERIC):  # one folded name, two companies
        extra.append({"customer_id": f"GEN{k}a", "name": a, "city": "上海", "phone": None,
                      "email": None})
        extra.append({"customer_id": f"GEN{k}b", "name": b, "city": "上海", "phone": None,
                      "email": None})
    frame = pd.DataFrame(rows + extra)
    frame = frame[["customer_id", "name", "city", "phone", "email"]].assign(
        kind="Company", tax_id=None, address=None)
    frame = frame.sample(frac=1, random_state=seed).reset_index(drop=True)  # rows mixed
    frame["_row"] = range(2, len(frame) + 2)
    return frame, truth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--companies", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--show", type=int, default=0, help="print this many misses and "
                        "false pairs")
    args = parser.parse_args()
    frame, truth = generate(args.companies, args.seed)
    result = score(frame, truth)
    print(f"{len(frame):,} companies, {len(truth)} true pairs: precision "
          f"{result['precision']:.4f}, recall {result['recall']:.4f}, F1 {result['f1']:.4f}, "
          f"in {result['seconds']:.2f} s  (target F1 >= 0.97)")
    if args.show:
        from itertools import combinations

        from xlcrm.dedupe import find_duplicate_customers

        ids = frame.set_index("customer_id")
        found = {tuple(sorted((str(frame.at[a, "customer_id"]), str(frame.at[b,
                 "customer_id"])))) for m in find_duplicate_customers(frame, "CN", 0.85)
                 for a, b in combinations(m.indices, 2)}
        for label, pairs in (("missed", truth - found), ("false", found - truth)):
            for a, b in sorted(pairs)[: args.show]:
                print(label, *(ids.loc[x, ["name", "city", "phone", "email"]].tolist()
                               for x in (a, b)))


if __name__ == "__main__":
    main()
