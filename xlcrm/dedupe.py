"""Duplicate customers: blocking, pair scoring with reasons, clusters.

Built on rapidfuzz plus our own scoring rather than splink: the evidence that matters in a CRM
(a shared phone, tax ID or company domain; a name that differs only in legal form, region or
script) is a handful of rules a person can read back, the data is one table of at most a few
hundred thousand rows held in pandas already, and splink would add DuckDB and a trained model
whose weights nobody on a sales team can check. Each pair carries its score and its reasons.

- **Keys** (`xlcrm.normalize`): company names folded (traditional → simplified with OpenCC,
  legal forms with cleanco plus our Chinese list, region prefixes, punctuation, case), phones
  folded to +86 digits (E.164 through phonenumbers for other regions; phonenumbers costs
  100 µs a number, too slow for a million), e-mails, tax IDs, and the e-mail domain unless it
  is a free-mail one.
- **Blocking**: only records that share a phone, e-mail, tax ID, company domain or folded
  name are compared (groups over `MAX_BLOCK` are skipped), plus each record with its
  `WINDOW - 1` neighbours in folded-name order (sorted neighbourhood, for typos), so the cost
  grows about linearly.
- **Name similarity** is a weighted token overlap: tokens (words; for Chinese, character
  pairs) weigh by how rare they are in the sheet, and near-identical long tokens count as
  shared. "X Capital" vs "Y Capital", 华信 vs 华讯 and 小鹏 vs 大鹏 share only a common token
  and score low; "Stripe" vs "Strix" are different tokens.
- **Score**: a shared tax ID is decisive, and two different valid tax IDs are two legal
  entities; a shared phone or e-mail with a similar name is strong; a shared company domain
  with a similar name counts unless phones or cities differ (a branch); a near-identical name
  alone counts only when nothing contradicts it: the same brand in two cities is two
  customers. A shared phone with a different name is one switchboard, not one customer.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd
from rapidfuzz import fuzz

from . import normalize as nz

MAX_BLOCK = 20
PERSON_WORDS = frozenset({"individual", "person", "个人", "自然人"})  # Customer Type values
WINDOW = 4  # sorted-neighbourhood window over folded names
FREE_MAIL = frozenset({
    "qq.com", "163.com", "126.com", "yeah.net", "sina.com", "sina.cn", "sohu.com", "139.com",
    "189.cn", "aliyun.com", "foxmail.com", "gmail.com", "googlemail.com", "outlook.com",
    "hotmail.com", "live.com", "msn.com", "yahoo.com", "icloud.com", "me.com", "aol.com",
    "proton.me", "protonmail.com", "gmx.com", "mail.com", "yandex.com",
})
_CJK = re.compile(r"[\u3400-\u9fff]")
_WORD = re.compile(r"[a-z0-9]+|[\u3400-\u9fff]+")


@dataclass
class Pair:
    a: int  # frame index
    b: int
    score: float
    reasons: list[str]


@dataclass
class Match:
    """Two or more rows of one frame (by index) that look like one customer, and why."""

    indices: list[int]
    reasons: list[str] = field(default_factory=list)
    score: float = 0.0
    pairs: list[Pair] = field(default_factory=list)


def clusters_json(frame: pd.DataFrame, sheet: str, matches: list[Match],
                  id_field: str = "customer_id") -> list[dict[str, Any]]:
    """Clusters in the `xlcrm dedupe --format json` shape."""
    ids = frame[id_field].map(nz.text)
    rows = frame["_row"]
    return [{"sheet": sheet, "record_ids": [ids[i] for i in m.indices],
             "rows": [int(rows[i]) for i in m.indices], "score": m.score,
             "pairs": [{"a": ids[p.a], "b": ids[p.b], "score": p.score, "reasons": p.reasons}
                       for p in m.pairs]} for m in matches]


def duplicate_rows(frame: pd.DataFrame, sheet: str, matches: list[Match],
                   id_field: str = "customer_id", first: int = 1) -> list[list[Any]]:
    """The Duplicates sheet's rows: cluster number (from `first`), sheet, record, row, score,
    reasons."""
    out = []
    for number, cluster in enumerate(clusters_json(frame, sheet, matches, id_field),
                                     start=first):
        for rid, row in zip(cluster["record_ids"], cluster["rows"], strict=True):
            reasons = sorted({r for p in cluster["pairs"] if rid in (p["a"], p["b"])
                              for r in p["reasons"]})
            out.append([number, sheet, rid, row, cluster["score"], "; ".join(reasons)])
    return out


def pinyin_words(name: str) -> str:
    """A Chinese person's name as pinyin syllables ("张伟" → "zhang wei"); other text kept."""
    from pypinyin import lazy_pinyin

    return " ".join(" ".join(lazy_pinyin(word)) if _CJK.search(word) else word
                    for word in name.split())


def tokens(key_text: str) -> list[str]:
    """Words of a folded name; Chinese runs as character pairs (a lone character alone)."""
    out: list[str] = []
    for word in _WORD.findall(key_text):
        if _CJK.match(word):
            out += [word[i:i + 2] for i in range(max(len(word) - 1, 1))]
        else:
            out.append(word)
    return out


class _Records:
    """The keys of every customer, computed once, held as lists by position."""

    def __init__(self, frame: pd.DataFrame, region: str) -> None:
        def column(name: str) -> list[Any]:
            return frame[name].tolist() if name in frame.columns else [None] * len(frame)

        def keys(values: list[Any], convert: Any) -> list[Any]:
            cache: dict[Any, Any] = {}
            out: list[Any] = []
            for value in values:
                if nz.is_blank(value):
                    out.append(None)
                    continue
                if value not in cache:
                    cache[value] = convert(value) or None
                out.append(cache[value])
            return out

        self.index = list(frame.index)
        self.person = [nz.record_id(k) in PERSON_WORDS for k in column("kind")]
        names = [n or "" for n in keys(column("name"), nz.name_words)]
        # a person's Chinese name is compared through pinyin too: 张伟 = Zhang Wei
        self.name = [pinyin_words(n) if p and _CJK.search(n) else n
                     for n, p in zip(names, self.person, strict=True)]
        self.key = [n.replace(" ", "") for n in self.name]
        self.phone = keys(column("phone"), lambda v: nz.phone_key(v, region))
        self.email = keys(column("email"), lambda v: nz.email_key(nz.text(v)))
        self.domain = [e.rsplit("@", 1)[1] if e and e.rsplit("@", 1)[1] not in FREE_MAIL
                       else None for e in self.email]
        self.tax = keys(column("tax_id"), nz.tax_id_key)
        # a tax number that is not a valid unified code (a foreign VAT or EIN, a typo) still
        # identifies, less surely: compared as upper-case letters and digits
        self.uid: list[str | None] = [None if t else (u if u and len(u) >= 6 else None) for t, u in
                    zip(self.tax, keys(column("tax_id"), _id_text), strict=True)]
        self.person = [nz.record_id(k) in PERSON_WORDS for k in column("kind")]
        # addresses are evidence between people; companies share buildings
        people_addresses = [v if p else None for v, p in
                            zip(column("address"), self.person, strict=True)]
        self.address: list[str | None] = keys(
            people_addresses, lambda v: nz.name_words(v) if len(nz.text(v)) >= 6 else None)
        self.city = keys(column("city"), nz.company_key)
        self.tokens = [frozenset(tokens(n)) for n in self.name]
        counts: Counter[str] = Counter()
        for words in self.tokens:
            counts.update(words)
        total = max(len(frame), 1)
        self.idf = {t: math.log(1 + total / c) for t, c in counts.items()}
        self.weight = [sum(self.idf[t] for t in words) for words in self.tokens]
        self.key_count = Counter(k for k in self.key if k)

    def blocks(self) -> Iterable[list[int]]:
        """Groups sharing an identifier or a folded name, and a sliding window over the
        records sorted by folded name (near-identical names sort together)."""
        orders = (
            [(k, self.city[p] or "", self.phone[p] or "", p) for p, k in enumerate(self.key)
             if k],
            [(k[::-1], "", "", p) for p, k in enumerate(self.key)  # people: typos up front
             if k and self.person[p]],
            [(a, "", "", p) for p, a in enumerate(self.address) if a],
        )
        for order in orders:
            order.sort()
            for start in range(len(order)):
                window = [item[3] for item in order[start:start + WINDOW]]
                if len(window) > 1:
                    yield window
        words = ["".join(sorted(n.split())) or None for n in self.name]  # names swapped
        for values in (self.phone, self.email, self.tax, self.uid, self.domain, self.key,
                       self.address, words):
            groups: dict[Any, list[int]] = defaultdict(list)
            for position, value in enumerate(values):
                if value:
                    groups[value].append(position)
            for members in groups.values():
                if 1 < len(members) <= MAX_BLOCK:
                    yield members

    def name_similarity(self, a: int, b: int) -> float:
        """Weighted Jaccard of the two names' tokens (weights: rarity in the sheet)."""
        ta, tb = self.tokens[a], self.tokens[b]
        if not ta or not tb:
            return 0.0
        shared = ta & tb
        shared_weight = sum(self.idf[t] for t in shared)
        union_weight = self.weight[a] + self.weight[b] - shared_weight
        if len(shared) < min(len(ta), len(tb)):  # a near-identical long word is a typo
            for x in ta - shared:
                if len(x) < 4 or _CJK.match(x):
                    continue
                for y in tb - shared:
                    if len(y) >= 4 and fuzz.ratio(x, y) >= 80:
                        shared_weight += self.idf[x]
                        union_weight -= self.idf[y]
                        break
        return shared_weight / union_weight if union_weight > 0 else 0.0


def _id_text(value: Any) -> str:
    return re.sub(r"[^0-9A-Za-z]", "", nz.text(value)).upper()


def score_pair(records: _Records, a: int, b: int, threshold: float = 0.0) -> Pair | None:
    """The evidence for the records at positions a and b being one customer: a score and,
    when it reaches `threshold`, the reasons (None below it)."""
    r = records
    labels = ("tax ID", "phone", "e-mail", "company domain")
    columns = (r.tax, r.phone, r.email, r.domain)
    same = {label: values[a] is not None and values[a] == values[b]
            for label, values in zip(labels, columns, strict=True)}
    conflicts = [text for text, values in (("different phones", r.phone),
                                           ("different tax IDs", r.tax))
                 if values[a] and values[b] and values[a] != values[b]]
    ca, cb = r.city[a], r.city[b]
    if ca and cb and ca != cb and fuzz.ratio(ca, cb) < 80:  # a typo is not another city
        conflicts.append("different cities")
    ua, ub = r.uid[a], r.uid[b]
    same_uid = ua is not None and ua == ub
    near_uid = bool(ua and ub and ua != ub and len(ua) == len(ub)
                    and sum(x != y for x, y in zip(ua, ub, strict=True)) == 1)
    aa, ab = r.address[a], r.address[b]
    address = fuzz.token_set_ratio(aa, ab) / 100 if aa and ab else 0.0
    if aa and ab and address < 0.5:
        conflicts.append("different addresses")
    if conflicts and threshold > 0.7 and not (same["tax ID"] or same["phone"] or same["e-mail"]
                                              or same_uid or near_uid or address >= 0.9):
        return None  # a name, or a shared domain, against a conflict scores 0.7 at most
    name = 1.0 if r.key[a] and r.key[a] == r.key[b] else r.name_similarity(a, b)
    strong = same["phone"] or same["e-mail"]  # one person's line or mailbox
    domain_only = same["company domain"] and not strong
    if same["tax ID"]:
        score = 0.99
    elif "different tax IDs" in conflicts:
        score = min(0.5, 0.5 * name)  # two legal entities, whatever else they share
    elif strong and name >= 0.8:
        score = 0.9 + 0.09 * name
    elif strong and name >= 0.5:
        score = 0.86
    elif strong:
        score = 0.6  # one switchboard, two companies
    elif same_uid:  # a tax number identifies one entity whatever its name
        score = 0.95 if (name >= 0.3 or address >= 0.8 or not r.city[a] or not r.city[b]
                         or r.city[a] == r.city[b]) else 0.86
    elif near_uid and name >= 0.8:
        score = 0.9
    elif address >= 0.9 and name >= 0.6 and "different phones" not in conflicts:
        score = 0.9
    elif address >= 0.95 and name >= 0.25 and not conflicts:
        score = 0.86  # the same full address, the name changed (marriage, typo)
    elif domain_only and name >= 0.8 and not conflicts:
        score = 0.9
    elif domain_only and name >= 0.8:
        score = 0.7  # the same firm's branch in another city
    elif name >= 0.95 and not conflicts and r.key_count[r.key[a]] <= 2:
        score = 0.88  # a name shared by three or more records is a common name, not evidence
    else:
        score = 0.8 * name * (0.6 if conflicts else 1.0)
    score = round(min(score, 0.99), 3)
    if score < threshold:
        return None
    reasons = [f"same {label} {values[a]}" for label, values in zip(labels, columns,
                                                                     strict=True)
               if same[label]]
    if same_uid:
        reasons.append(f"same tax number {r.uid[a]}")
    if near_uid:
        reasons.append(f"tax number {r.uid[a]} ~ {r.uid[b]}")
    if address >= 0.9:
        reasons.append(f"address {round(address * 100)}%")
    if name > 0:
        reasons.append(f"name {round(name * 100)}%")
    return Pair(records.index[a], records.index[b], score, reasons + conflicts)


def find_duplicate_customers(frame: pd.DataFrame, region: str = "CN",
                             threshold: float = 0.85) -> list[Match]:
    """Clusters of customers scoring at least `threshold` with another member (transitively),
    with each pair's score and reasons."""
    if frame.empty:
        return []
    records = _Records(frame, region)
    size = len(records.index)
    codes: list[int] = []  # each candidate pair once, as a * size + b (numpy de-duplicates)
    for block in records.blocks():
        members = sorted(block)
        codes.extend(a * size + b for a, b in combinations(members, 2))
    pairs: list[Pair] = []
    for code in np.unique(np.asarray(codes, dtype=np.int64)).tolist():
        pair = score_pair(records, code // size, code % size, threshold)
        if pair is not None:
            pairs.append(pair)
    return _cluster(pairs)


# ---------------------------------------------------------------------------------------------
# Every sheet

ID_FIELDS = {"customers": "customer_id", "opportunities": "opportunity_id",
             "interactions": "interaction_id"}


def find_duplicates(frame: pd.DataFrame, sheet_key: str, region: str = "CN",
                    threshold: float = 0.85) -> list[Match]:
    """Duplicate clusters in one data sheet (customers, opportunities or interactions)."""
    if sheet_key == "customers":
        return find_duplicate_customers(frame, region, threshold)
    if sheet_key == "opportunities":
        return find_duplicate_opportunities(frame, threshold)
    return find_duplicate_interactions(frame, threshold)


def all_duplicates(sheets: dict[str, Any], region: str, threshold: float
                   ) -> dict[str, list[Match]]:
    """Clusters of every data sheet, keyed by sheet key (`sheets`: key -> SheetData)."""
    return {key: find_duplicates(sheets[key].frame, key, region, threshold)
            for key in ID_FIELDS}


def duplicate_sheet_rows(sheets: dict[str, Any], found: dict[str, list[Match]]
                         ) -> list[list[Any]]:
    """The Duplicates sheet: the clusters of every sheet, numbered on from one another."""
    rows: list[list[Any]] = []
    for key, matches in found.items():
        first = (rows[-1][0] + 1) if rows else 1
        rows += duplicate_rows(sheets[key].frame, sheets[key].name, matches, ID_FIELDS[key],
                               first)
    return rows


# ---------------------------------------------------------------------------------------------
# Opportunities and interactions

TITLE_SIMILAR = 90  # rapidfuzz token-set ratio from which two titles or summaries agree
OVERLAP_DAYS = 90  # opportunities created this close together overlap in time


def find_duplicate_opportunities(frame: pd.DataFrame, threshold: float = 0.85) -> list[Match]:
    """The same customer (or prospect company), a similar title and an overlapping period:
    created within `OVERLAP_DAYS` of each other, or one's period containing the other's."""
    if frame.empty:
        return []
    owner = [nz.record_id(c) or ("company:" + nz.company_key(p) if not nz.is_blank(p) else "")
             for c, p in zip(frame["customer_id"], frame["company"], strict=True)]
    shown = [nz.text(c) or nz.text(p) for c, p in
             zip(frame["customer_id"], frame["company"], strict=True)]
    title = [nz.name_words(t) for t in frame["title"]]
    start = [nz.parse_date(v) for v in frame["created_at"]]
    end = [nz.parse_date(c) or nz.parse_date(e) for c, e in
           zip(frame["closed_at"], frame["expected_close"], strict=True)]

    def score(a: int, b: int) -> Pair | None:
        if not title[a] or not title[b]:
            return None
        similar = fuzz.token_set_ratio(title[a], title[b]) / 100
        if similar * 100 < TITLE_SIMILAR:
            return None
        sa, sb, ea, eb = start[a], start[b], end[a], end[b]
        if sa is not None and sb is not None:
            overlap = (abs((sa - sb).days) <= OVERLAP_DAYS or (ea is not None and sa <= sb <= ea)
                       or (eb is not None and sb <= sa <= eb))
            if not overlap:
                return None
        return Pair(frame.index[a], frame.index[b], round(0.85 + 0.14 * similar, 3),
                    [f"same customer {shown[a]}", f"title {round(similar * 100)}%",
                     "overlapping period"])

    return _cluster(_pairs(owner, score, threshold))


def find_duplicate_interactions(frame: pd.DataFrame, threshold: float = 0.85) -> list[Match]:
    """The same customer, day and type, with a near-identical summary."""
    if frame.empty:
        return []
    day = [nz.parse_date(v) for v in frame["date"]]
    block = [f"{nz.record_id(c)}|{d}|{nz.record_id(k)}" if d and not nz.is_blank(c) else ""
             for c, d, k in zip(frame["customer_id"], day, frame["kind"], strict=True)]
    summary = [nz.text(s).casefold() for s in frame["summary"]]

    def score(a: int, b: int) -> Pair | None:
        similar = fuzz.ratio(summary[a], summary[b]) / 100 if summary[a] and summary[b] else (
            1.0 if summary[a] == summary[b] else 0.0)
        if similar * 100 < TITLE_SIMILAR:
            return None
        return Pair(frame.index[a], frame.index[b], round(0.85 + 0.14 * similar, 3),
                    ["same customer, day and type", f"summary {round(similar * 100)}%"])

    return _cluster(_pairs(block, score, threshold))



def _pairs(block: list[str], score: Any, threshold: float) -> list[Pair]:
    groups: dict[str, list[int]] = defaultdict(list)
    for position, key in enumerate(block):
        if key:
            groups[key].append(position)
    out = []
    for members in groups.values():
        if 1 < len(members) <= MAX_BLOCK * 5:
            for a, b in combinations(members, 2):
                pair = score(a, b)
                if pair is not None and pair.score >= threshold:
                    out.append(pair)
    return out


def _cluster(pairs: list[Pair]) -> list[Match]:
    parent: dict[Any, Any] = {}

    def find(i: Any) -> Any:
        parent.setdefault(i, i)
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for pair in pairs:
        parent[find(pair.b)] = find(pair.a)
    members: dict[Any, list[Any]] = defaultdict(list)
    for i in {p.a for p in pairs} | {p.b for p in pairs}:
        members[find(i)].append(i)
    by_root: dict[Any, list[Pair]] = defaultdict(list)
    for pair in pairs:
        by_root[find(pair.a)].append(pair)
    return sorted((Match(sorted(indices), sorted({r for p in by_root[root] for r in p.reasons}),
                         max(p.score for p in by_root[root]), by_root[root])
                   for root, indices in members.items()), key=lambda m: m.indices[0])
