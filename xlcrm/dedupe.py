"""Duplicate customers: blocking, pair scoring with reasons, clusters.

Built on rapidfuzz plus our own scoring rather than splink: the evidence that matters in a CRM
(a shared phone, tax ID or company domain; a name that differs only in legal form, region or
script) is a handful of rules a person can read back, the data is one table of at most a few
hundred thousand rows held in pandas already, and splink would add DuckDB and a trained model
whose weights nobody on a sales team can check. Each pair carries its score and its reasons.

- **Keys** (`xlcrm.normalize`): company names folded (traditional → simplified with OpenCC,
  legal forms with cleanco plus our Chinese list, region prefixes, punctuation, case), phones
  in E.164, e-mails, tax IDs, and the e-mail domain unless it is a free-mail one.
- **Blocking**: only records that share a phone, e-mail, tax ID, company domain, folded name
  or the first four characters of it are compared; blocks over `MAX_BLOCK` (a name prefix
  shared by hundreds) are skipped, so the cost grows about linearly.
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

import pandas as pd
from rapidfuzz import fuzz

from . import normalize as nz

MAX_BLOCK = 50
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


def clusters_json(frame: pd.DataFrame, sheet: str, matches: list[Match]) -> list[dict[str, Any]]:
    """Clusters in the `xlcrm dedupe --format json` shape."""
    ids = frame["customer_id"].map(nz.text)
    rows = frame["_row"]
    return [{"sheet": sheet, "record_ids": [ids[i] for i in m.indices],
             "rows": [int(rows[i]) for i in m.indices], "score": m.score,
             "pairs": [{"a": ids[p.a], "b": ids[p.b], "score": p.score, "reasons": p.reasons}
                       for p in m.pairs]} for m in matches]


def duplicate_rows(frame: pd.DataFrame, sheet: str, matches: list[Match]) -> list[list[Any]]:
    """The Duplicates sheet's rows: cluster number, sheet, record, row, score, reasons."""
    out = []
    for number, cluster in enumerate(clusters_json(frame, sheet, matches), start=1):
        for rid, row in zip(cluster["record_ids"], cluster["rows"], strict=True):
            reasons = sorted({r for p in cluster["pairs"] if rid in (p["a"], p["b"])
                              for r in p["reasons"]})
            out.append([number, sheet, rid, row, cluster["score"], "; ".join(reasons)])
    return out


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
    """The keys of every customer, computed once."""

    def __init__(self, frame: pd.DataFrame, region: str) -> None:
        def column(name: str) -> pd.Series:
            return frame[name] if name in frame.columns else pd.Series(None, index=frame.index)

        self.index = list(frame.index)
        self.ids = column("customer_id").map(nz.text)
        self.name = column("name").map(lambda v: nz.name_words(v) if not nz.is_blank(v) else "")
        self.key = self.name.map(lambda v: v.replace(" ", ""))
        self.phone = _clean(column("phone").map(
            lambda v: None if nz.is_blank(v) else nz.phone_e164(nz.text(v), region)))
        self.email = _clean(column("email").map(
            lambda v: None if nz.is_blank(v) else nz.email_key(nz.text(v))))
        self.domain = _clean(self.email.map(
            lambda e: e.rsplit("@", 1)[1] if isinstance(e, str)
            and e.rsplit("@", 1)[1] not in FREE_MAIL else None))
        self.tax = _clean(column("tax_id").map(nz.tax_id_key))
        self.city = _clean(column("city").map(
            lambda v: None if nz.is_blank(v) else (nz.company_key(v) or None)))
        self.tokens = self.name.map(tokens)
        counts: Counter[str] = Counter()
        for words in self.tokens:
            counts.update(set(words))
        total = max(len(frame), 1)
        self.idf = {t: math.log(1 + total / c) for t, c in counts.items()}

    def blocks(self) -> Iterable[list[Any]]:
        for series in (self.phone, self.email, self.tax, self.domain, self.key,
                       self.key.map(lambda k: k[:4] if len(k) >= 4 else None)):
            present = series.replace("", None).dropna()
            present = present[present.duplicated(keep=False)]
            for members in present.groupby(present).groups.values():
                if 1 < len(members) <= MAX_BLOCK:
                    yield list(members)

    def name_similarity(self, a: Any, b: Any) -> float:
        ta, tb = set(self.tokens[a]), set(self.tokens[b])
        if not ta or not tb:
            return 0.0
        shared = ta & tb
        for x in ta - shared:  # a near-identical long word counts as shared (typos)
            for y in tb - shared:
                if min(len(x), len(y)) >= 5 and not _CJK.match(x) and fuzz.ratio(x, y) >= 88:
                    shared = shared | {x}
                    tb = (tb - {y}) | {x}
                    break
        union = ta | tb
        weight = sum(self.idf.get(t, 1.0) for t in union)
        return sum(self.idf.get(t, 1.0) for t in shared) / weight if weight else 0.0


def _clean(series: pd.Series) -> pd.Series:
    """Keys as objects, with None (never NaN) for missing."""
    return series.astype(object).where(series.notna(), None)


def score_pair(records: _Records, a: Any, b: Any) -> Pair:
    """The evidence for a and b being one customer: a score in 0..1 and reasons."""
    r = records
    reasons: list[str] = []
    same = {label: (s[a] is not None and s[a] == s[b])
            for label, s in (("tax ID", r.tax), ("phone", r.phone), ("e-mail", r.email),
                             ("company domain", r.domain))}
    for label, series in (("tax ID", r.tax), ("phone", r.phone), ("e-mail", r.email),
                          ("company domain", r.domain)):
        if same[label]:
            reasons.append(f"same {label} {series[a]}")
    name = 1.0 if r.key[a] and r.key[a] == r.key[b] else r.name_similarity(a, b)
    if name > 0:
        reasons.append(f"name {round(name * 100)}%")
    conflicts = []
    if r.phone[a] and r.phone[b] and r.phone[a] != r.phone[b]:
        conflicts.append("different phones")
    if r.city[a] and r.city[b] and r.city[a] != r.city[b]:
        conflicts.append("different cities")
    if r.tax[a] and r.tax[b] and r.tax[a] != r.tax[b]:
        conflicts.append("different tax IDs")
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
    elif domain_only and name >= 0.8 and not conflicts:
        score = 0.9
    elif domain_only and name >= 0.8:
        score = 0.7  # the same firm's branch in another city
    elif name >= 0.95 and not conflicts:
        score = 0.88
    else:
        score = 0.8 * name * (0.6 if conflicts else 1.0)
    reasons += conflicts
    return Pair(a, b, round(min(score, 0.99), 3), reasons)


def find_duplicate_customers(frame: pd.DataFrame, region: str = "CN",
                             threshold: float = 0.85) -> list[Match]:
    """Clusters of customers scoring at least `threshold` with another member (transitively),
    with each pair's score and reasons."""
    if frame.empty:
        return []
    records = _Records(frame, region)
    seen: set[tuple[Any, Any]] = set()
    pairs: list[Pair] = []
    for block in records.blocks():
        for a, b in combinations(sorted(block), 2):
            if (a, b) in seen:
                continue
            seen.add((a, b))
            pair = score_pair(records, a, b)
            if pair.score >= threshold:
                pairs.append(pair)
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
    out = []
    for root, indices in members.items():
        cluster_pairs = by_root[root]
        reasons = sorted({reason for p in cluster_pairs for reason in p.reasons})
        out.append(Match(sorted(indices), reasons,
                         max(p.score for p in cluster_pairs), cluster_pairs))
    return sorted(out, key=lambda m: m.indices[0])
