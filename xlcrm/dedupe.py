"""Duplicate customers, first cut: records that share a strong key.

Keys: the folded company name, a valid tax ID, a valid phone (E.164) and an e-mail address.
Each key is a block, so the cost is linear in the number of customers. The fuzzy matcher
with scores and merge (the duplicates issue) builds on this module.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import pandas as pd

from . import normalize as nz


@dataclass
class Match:
    """Two or more rows of one frame (by index) that look like one customer, and why."""

    indices: list[int]
    reasons: list[str] = field(default_factory=list)


def find_duplicate_customers(frame: pd.DataFrame, region: str = "CN") -> list[Match]:
    keys: dict[str, pd.Series] = {
        "name": frame["name"].map(lambda v: nz.company_key(v) or None),
        "tax ID": frame["tax_id"].map(nz.tax_id_key),
        "phone": frame["phone"].map(lambda v: None if nz.is_blank(v)
                                    else nz.phone_e164(nz.text(v), region)),
        "email": frame["email"].map(lambda v: None if nz.is_blank(v) else nz.email_key(nz.text(v))),
    }
    parent = {i: i for i in frame.index}

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    reasons: dict[int, set[str]] = defaultdict(set)
    for label, series in keys.items():
        present = series.dropna()
        present = present[present.duplicated(keep=False)]  # only shared keys can pair
        for value, group in present.groupby(present).groups.items():
            members = list(group)
            if len(members) < 2:
                continue
            for other in members[1:]:
                parent[find(other)] = find(members[0])
            for member in members:
                reasons[member].add(f"same {label} {value}")
    clusters: dict[int, list[int]] = defaultdict(list)
    for i in frame.index:
        if reasons.get(i):
            clusters[find(i)].append(i)
    return [Match(sorted(m), sorted({r for i in m for r in reasons[i]}))
            for m in clusters.values() if len(m) > 1]
