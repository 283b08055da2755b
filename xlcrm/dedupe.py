"""Duplicate customers: blocking, pair scoring with reasons, clusters.

Built on rapidfuzz plus our own scoring rather than splink: the evidence that matters in a CRM
(a shared phone, tax ID or company domain; a name that differs only in legal form, region or
script) is a handful of rules a person can read back, the data is one table held in pandas
already, and splink would add DuckDB and a trained model whose weights nobody on a sales team
can check. Each pair carries its score and its reasons.

- **Keys** (`xlcrm.normalize`, its many-value forms): company names folded (traditional →
  simplified with OpenCC, legal forms with cleanco's terms plus our Chinese list, region
  prefixes, punctuation, case), phones folded to +86 digits (E.164 through phonenumbers for
  other regions), e-mails, tax IDs, and the e-mail domain unless it is free mail. Each key is
  computed once per distinct value and kept as a numpy array of integer codes (`_Columns`);
  the names' tokens are found for all names at once with numpy (`_tokenise`).
- **Blocking**: only records that share a phone, e-mail, tax number, company domain, folded
  name or its words are compared (groups over `MAX_BLOCK` are skipped), plus each record with
  its `WINDOW - 1` neighbours in folded-name order (sorted neighbourhood, for typos); the pairs
  are built with numpy, and the cost grows about linearly.
- **Name similarity** is a weighted token overlap: tokens (words; for Chinese, character
  pairs) weigh by how rare they are in the sheet, and near-identical long words count as
  shared. "X Capital" vs "Y Capital", 华信 vs 华讯 and 小鹏 vs 大鹏 share only a common token
  and score low; "Stripe" vs "Strix" are different tokens.
- **The bound**: a pair with nothing but a name in common needs a similarity of 0.95 (at the
  default threshold). An upper bound on the similarity of every such pair is computed at once
  with numpy (shared tokens by number; unshared words counted as shared only if rapidfuzz
  finds them within a typo of one another), and only pairs that can reach it are compared in
  Python. The bound never drops a pair that would match: a test compares with `gate=False`.
- **Score**: a shared tax ID is decisive, and two different valid tax IDs are two legal
  entities; a shared phone or e-mail with a similar name is strong; a shared company domain
  with a similar name counts unless phones or cities differ (a branch); a near-identical name
  alone counts only when nothing contradicts it: the same brand in two cities is two
  customers. A shared phone with a different name is one switchboard, not one customer.
- **A forked child**: from `PARALLEL_FROM` records, on Linux with a second core, the
  identifiers (phones, e-mails, tax numbers, addresses, cities) are keyed in a forked child
  while this process folds and tokenises the names (`Background`). Elsewhere (Windows,
  macOS, inside Excel), or if the child dies, it all runs in this process.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property, lru_cache, partial
from itertools import chain
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from rapidfuzz import fuzz, process

from . import normalize as nz
from . import progress
from .background import Background
from .messages import reasons_text, t

MAX_BLOCK = 20
TYPO_RATIO = 75  # rapidfuzz ratio from which two words of 4+ letters are one word mistyped
#                  (one letter wrong in a four-letter word: 75)
PERSON_WORDS = frozenset({"individual", "person", "个人", "自然人"})  # Customer Type values
WINDOW = 4  # sorted-neighbourhood window over folded names
NUMBER_WINDOW = 16  # the same over tax numbers (sorted, and sorted reversed)
FREE_MAIL = frozenset({
    "qq.com", "163.com", "126.com", "yeah.net", "sina.com", "sina.cn", "sohu.com", "139.com",
    "189.cn", "aliyun.com", "foxmail.com", "gmail.com", "googlemail.com", "outlook.com",
    "hotmail.com", "live.com", "msn.com", "yahoo.com", "icloud.com", "me.com", "aol.com",
    "proton.me", "protonmail.com", "gmx.com", "mail.com", "yandex.com",
})
_CJK = re.compile(r"[\u3400-\u9fff]")
GENERIC_PLACES = frozenset({  # words that name no one in particular: a region, a boast
    "pacific", "atlantic", "asia", "asian", "euro", "europe", "european", "china", "sino",
    "america", "american", "national", "united", "general", "global", "world", "orient",
    "oriental", "eastern", "western", "northern", "southern", "first", "new", "great",
    "royal", "standard", "universal", "metro", "city", "star", "golden", "sun", "east", "west",
    "north", "south", "central", "modern", "premier", "prime", "best", "top", "the", "and",
})
GENERIC_WORDS = frozenset({  # what is left of a name once region and legal form are gone
    "科技", "技术", "贸易", "商贸", "实业", "建设", "建筑", "工程", "投资", "控股", "集团",
    "电子", "信息", "网络", "软件", "医药", "制药", "生物", "环保", "能源", "物流", "食品",
    "传媒", "文化", "教育", "咨询", "置业", "地产", "房地产", "汽车", "化工", "机械", "电气",
    "材料", "农业", "园林", "装饰", "服务", "发展", "国际", "阳光", "银行", "证券", "保险",
    "trading", "trade", "holdings", "holding", "group", "technology", "technologies", "tech",
    "capital", "services", "service", "consulting", "solutions", "industries", "industrial",
    "international", "systems", "global", "enterprises", "investments", "partners",
    "logistics", "media", "software", "energy",
})


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


def record_label(frame: pd.DataFrame, index: Any, id_field: str, lang: str = "en") -> str:
    """How a record is named to people: its ID, or (while its ID is blank) its name or title
    and the row ("Acme Ltd (row 5)")."""
    rid = nz.text(frame.at[index, id_field])
    if rid:
        return rid
    named = NAME_FIELDS.get(id_field)
    name = nz.text(frame.at[index, named]) if named and named in frame.columns else ""
    row = int(frame.at[index, "_row"])
    return t("named_row", lang, name=name[:40], row=row) if name else t("row", lang, row=row)


NAME_FIELDS = {"customer_id": "name", "opportunity_id": "title", "interaction_id": "summary"}


def clusters_json(frame: pd.DataFrame, sheet: str, matches: list[Match],
                  id_field: str = "customer_id", lang: str = "en") -> list[dict[str, Any]]:
    """Clusters in the `xlcrm dedupe --format json` shape. A record whose ID is blank is
    named by `record_label` in `record_ids` and `labels` alike."""
    labels = {i: record_label(frame, i, id_field, lang) for m in matches for i in m.indices}
    rows = frame["_row"]
    return [{"sheet": sheet, "record_ids": [labels[i] for i in m.indices],
             "labels": [labels[i] for i in m.indices],
             "rows": [int(rows[i]) for i in m.indices], "score": m.score,
             "pairs": [{"a": labels[p.a], "b": labels[p.b], "score": p.score,
                        "reasons": p.reasons} for p in m.pairs]} for m in matches]


def duplicate_rows(frame: pd.DataFrame, sheet: str, matches: list[Match],
                   id_field: str = "customer_id", first: int = 1, lang: str = "en"
                   ) -> list[list[Any]]:
    """The Duplicates sheet's rows: cluster number (from `first`), sheet, record, row, score,
    reasons (in `lang`)."""
    out = []
    for number, cluster in enumerate(clusters_json(frame, sheet, matches, id_field, lang),
                                     start=first):
        for rid, row in zip(cluster["record_ids"], cluster["rows"], strict=True):
            reasons = sorted({r for p in cluster["pairs"] if rid in (p["a"], p["b"])
                              for r in p["reasons"]})
            out.append([number, sheet, rid, row, cluster["score"], reasons_text(reasons, lang)])
    return out


# Extra columns (not in the contract) that identify a person, found by their header: an ID
# number is compared like another tax number, a date of birth corroborates or contradicts.
ID_NUMBER_HEADERS = frozenset({
    "ssn", "socialsecuritynumber", "socsecid", "nationalid", "idnumber", "idno", "idno.",
    "passport", "passportnumber", "passportno", "personalid", "身份证", "身份证号",
    "身份证号码", "证件号", "证件号码", "护照号", "护照号码",
})
BIRTH_DATE_HEADERS = frozenset({
    "dateofbirth", "dob", "birthday", "birthdate", "出生日期", "生日", "出生年月日",
})


def identity_column(frame: pd.DataFrame, headers: frozenset[str]) -> str | None:
    """The first extra column whose header (folded as headers are) is one of `headers`."""
    from .schema import normalize_header

    for column in frame.columns:
        if normalize_header(column) in headers:
            return str(column)
    return None


class Keys(NamedTuple):
    """One customer's comparison keys (None where the cell is blank or invalid)."""

    index: Any  # frame index
    key: str | None  # the folded name without spaces ("huaxunkeji"; a Chinese person's in
    # pinyin)
    phone: str | None
    email: str | None
    domain: str | None  # the e-mail's domain unless free-mail
    tax: str | None  # a valid unified social credit code
    uid: str | None  # any other tax number, as upper-case letters and digits
    address: str | None  # people's addresses only: companies share buildings
    city: str | None
    birth: str | None  # people's date of birth (an extra column), as YYYYMMDD
    tokens: tuple[frozenset[str], float]  # and their weight
    holders: int  # records with this folded name (three or more: a common name)
    person: bool  # Customer Type says Individual
    kindless: bool = False  # Customer Type is blank: a person or a company


class _Columns:
    """Every customer's keys as integer codes, one numpy array a key (-1 for none), each
    computed once for each distinct value: a million customers stay a few arrays."""

    def __init__(self, frame: pd.DataFrame, region: str) -> None:
        size = len(frame)

        def column(name: str) -> pd.Series:
            if name in frame.columns:
                return frame[name].astype(object)
            return pd.Series([None] * size, dtype=object)

        self.index = frame.index
        kind_code, kinds = pd.factorize(column("kind"))
        is_person = np.array([nz.record_id(k) in PERSON_WORDS for k in kinds] + [False])
        self.person = is_person[kind_code]
        self.kindless = kind_code < 0
        # a person's name is told apart so that a Chinese one is compared through pinyin
        raw_code, raw_names = pd.factorize(column("name"))
        both, distinct = pd.factorize(raw_code * 2 + self.person)
        raw_list = list(raw_names) + [None]  # code -1 → None
        id_header = identity_column(frame, ID_NUMBER_HEADERS)
        id_numbers = column(id_header) if id_header else column("")
        birth_header = identity_column(frame, BIRTH_DATE_HEADERS)
        births = column(birth_header) if birth_header else column("")
        with Background(size, _identifier_keys, column("phone"), column("email"),
                        column("tax_id"), column("address"), column("city"), self.person,
                        region, id_numbers, births, start_from=PARALLEL_FROM) as child:
            # meanwhile, the names and their tokens
            folded = nz.name_words_many([raw_list[c] for c in
                                         (np.asarray(distinct) // 2).tolist()])
            self._names(both, np.asarray(distinct) % 2 == 1, folded)
            self._tokens_and_weights(size)
            ((self.phone_code, self.phones), (self.email_code, self.emails),
             (self.domain_code, self.domains), (self.tax_code, self.taxes),
             (self.uid_code, self.uids), (self.address_code, self.addresses),
             (self.city_code, self.cities), (self.birth_code, self.births)) = child.result()
        self.idf: dict[str, float] = {}  # by token text, for the pairs compared in Python
        self._tokens: dict[int, tuple[frozenset[str], float]] = {}

    def _tokens_and_weights(self, size: int) -> None:
        """Every distinct name's distinct tokens (by number), and their rarity over the
        sheet: a token weighs log(1 + records / records with it)."""
        owner, ids, self.token_text = _tokenise(self.names)
        per_name = np.bincount(self.name_code[self.name_code >= 0], minlength=len(self.names))
        counts = np.bincount(ids, weights=per_name[owner], minlength=len(self.token_text))
        self.token_idf = np.log1p(max(size, 1) / np.maximum(counts, 1))
        self.token_typo = np.array([_typo_word(t) for t in self.token_text], dtype=bool)
        self.token_size = np.fromiter(map(len, self.token_text), dtype=np.int64,
                                      count=len(self.token_text))
        self.token_ids = ids
        self.token_start = np.searchsorted(owner, np.arange(len(self.names) + 1))
        self.name_weight = np.bincount(owner, weights=self.token_idf[ids],
                                       minlength=len(self.names))
        self.words_code = self._words_code()
        self.key_count = np.bincount(self.key_code[self.key_code >= 0],
                                     minlength=len(self.keys))

    def _words_code(self) -> np.ndarray:
        """Codes of names of several words by their set of tokens, whatever the words'
        order ("huaxun keji" and "keji huaxun" share one): each token a random 64-bit
        number, a set their sum."""
        several = np.flatnonzero(np.fromiter((" " in n for n in self.names), dtype=bool,
                                             count=len(self.names)))
        random = np.random.default_rng(0).integers(0, 2**63, size=len(self.token_text),
                                                   dtype=np.uint64) * np.uint64(2) + 1
        place, token = self._gather(several)
        with np.errstate(over="ignore"):
            sums = np.zeros(len(several), dtype=np.uint64)
            np.add.at(sums, place, random[token])
        codes = np.full(len(self.names) + 1, -1, dtype=np.int64)  # code -1 stays -1
        codes[several] = pd.factorize(sums)[0]
        out: np.ndarray = codes[self.name_code]
        return out

    def _names(self, codes: np.ndarray, person: np.ndarray, folded: list[str]) -> None:
        """Codes of the folded names (a Chinese person's in pinyin), and of the names
        without spaces; `codes` into `folded`."""
        for i in np.flatnonzero(person).tolist():
            if _CJK.search(folded[i]):
                folded[i] = pinyin_words(folded[i])
        names = [n or "" for n in folded]  # a blank name (code -1) folds to ""
        self.name_code, self.names = _recode(codes, names)
        self.key_code, self.keys = _recode(self.name_code, [n.replace(" ", "") for n in
                                                            self.names])

    def records(self, positions: np.ndarray) -> dict[int, Keys]:
        """The keys of the records at `positions`, by position."""
        def values(codes: np.ndarray, distinct: list[Any]) -> list[Any]:
            return [distinct[c] if c >= 0 else None for c in codes[positions].tolist()]

        self.learn(positions.tolist())
        columns = zip(self.index[positions], values(self.key_code, self.keys),
                      values(self.phone_code, self.phones), values(self.email_code, self.emails),
                      values(self.domain_code, self.domains), values(self.tax_code, self.taxes),
                      values(self.uid_code, self.uids),
                      values(self.address_code, self.addresses),
                      values(self.city_code, self.cities),
                      values(self.birth_code, self.births),
                      [self.tokens_of(p) for p in positions.tolist()],
                      np.append(self.key_count, 0)[self.key_code[positions]].tolist(),
                      self.person[positions].tolist(),
                      self.kindless[positions].tolist(),
                      strict=True)
        return dict(zip(positions.tolist(), (Keys(*row) for row in columns), strict=True))

    def candidates(self) -> tuple[np.ndarray, np.ndarray]:
        """Position pairs (a < b, each once) of records that share an identifier, a folded
        name or its words, or that are neighbours in folded-name order (typos sort together):
        about linear in the number of records."""
        firsts: list[np.ndarray] = []
        seconds: list[np.ndarray] = []
        with_key = np.flatnonzero(self.key_code >= 0)
        orders = [  # sorted neighbourhoods
            with_key[np.lexsort((with_key, _rank(self.phones)[self.phone_code[with_key]],
                                 _rank(self.cities)[self.city_code[with_key]],
                                 _rank(self.keys)[self.key_code[with_key]]))],
            self._reversed_order(),  # people: a typo up front
            self._sorted_words_order(),  # people: given and family names swapped
            _order(self.address_code, self.addresses),
            _order(self.address_code, [_DIGITS.sub("", a).strip() for a in self.addresses]),
        ]  # (people) the same street, the house number mistyped
        numbers = [  # a number mistyped near its end, or near its start: numbers crowd, so
            _order(self.uid_code, self.uids),  # a wider window
            _order(self.uid_code, [u[::-1] for u in self.uids]),
        ]
        for order in orders:
            for step in range(1, WINDOW):
                firsts.append(order[:-step])
                seconds.append(order[step:])
        for order in numbers:  # only numbers within a typo or two go on to be scored
            for step in range(1, NUMBER_WINDOW):
                near = self._numbers_near(order[:-step], order[step:])
                firsts.append(order[:-step][near])
                seconds.append(order[step:][near])
        for codes in (self.phone_code, self.email_code, self.tax_code, self.uid_code,
                      self.domain_code, self.key_code, self.address_code, self.words_code,
                      self.birth_code):
            for a, b in _group_pairs(codes):
                firsts.append(a)
                seconds.append(b)
        a = np.concatenate(firsts).astype(np.int64)
        b = np.concatenate(seconds).astype(np.int64)
        pair = np.sort(pd.unique(np.minimum(a, b) * len(self.key_code) + np.maximum(a, b)))
        return pair // len(self.key_code), pair % len(self.key_code)

    def _reversed_order(self) -> np.ndarray:
        """People with a name, in the order of their reversed folded names."""
        people = np.flatnonzero(self.person & (self.key_code >= 0))
        reversed_keys = [self.keys[c][::-1] for c in self.key_code[people].tolist()]
        return people[sorted(range(len(people)), key=lambda i: (reversed_keys[i], people[i]))]

    @cached_property
    def _uid_bytes(self) -> tuple[np.ndarray, np.ndarray]:
        """Each distinct tax number as a row of bytes, and its length."""
        width = max((len(u) for u in self.uids), default=1)
        table = np.array([u.encode() for u in self.uids], dtype=f"S{width}")
        return (table.view(np.uint8).reshape(len(table), width),
                np.fromiter(map(len, self.uids), dtype=np.int64, count=len(self.uids)))

    def _numbers_near(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Which pairs' tax numbers have one length and differ in at most two characters
        (vectorised over byte arrays; `one_typo_apart` decides exactly later). `a` and `b`
        are positions that hold a number."""
        data, length = self._uid_bytes
        ca, cb = self.uid_code[a], self.uid_code[b]
        differ = (data[ca] != data[cb]).sum(axis=1)
        out: np.ndarray = (length[ca] == length[cb]) & (differ <= 2)
        return out

    def _sorted_words_order(self) -> np.ndarray:
        """People with a name of several words, in the order of their words sorted
        ("langer gabrielle" beside "gabrielle laznger": swapped, and a typo in one)."""
        people = np.flatnonzero(self.person & (self.name_code >= 0))
        names = self.names
        sorted_keys = {c: " ".join(sorted(names[c].split()))
                       for c in set(self.name_code[people].tolist())}
        keys = [sorted_keys[c] for c in self.name_code[people].tolist()]
        return people[sorted(range(len(people)), key=lambda i: (keys[i], people[i]))]

    def evidence(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Which pairs share more than a similar name: an identifier, a folded name or its
        words, or both carry a tax number or an address (to be compared)."""
        keep = np.zeros(len(a), dtype=bool)
        for codes in (self.tax_code, self.phone_code, self.email_code, self.uid_code,
                      self.domain_code, self.key_code, self.words_code, self.birth_code):
            keep |= (codes[a] >= 0) & (codes[a] == codes[b])
        keep |= (self.uid_code[a] >= 0) & (self.uid_code[b] >= 0)  # one digit apart?
        keep |= (self.address_code[a] >= 0) & (self.address_code[b] >= 0)
        return keep

    def could_reach(self, a: np.ndarray, b: np.ndarray, needed: float) -> np.ndarray:
        """Which pairs' name similarity (`name_similarity`) can reach `needed`: an upper
        bound computed for all pairs at once with numpy, exact for the words the names
        share, generous for words that could be typos of each other."""
        out = np.zeros(len(a), dtype=bool)
        for start in range(0, len(a), 250_000):  # bounded memory
            upper = self._upper_similarity(self.name_code[a[start:start + 250_000]],
                                           self.name_code[b[start:start + 250_000]], needed)
            out[start:start + 250_000] = upper >= needed - 1e-9
        return out

    def _upper_similarity(self, name_a: np.ndarray, name_b: np.ndarray, needed: float
                          ) -> np.ndarray:
        upper = np.zeros(len(name_a))
        named = np.flatnonzero((name_a >= 0) & (name_b >= 0))
        name_a, name_b = name_a[named], name_b[named]
        pair_a, token_a = self._gather(name_a)
        pair_b, token_b = self._gather(name_b)
        count = len(self.token_text)
        both = np.sort(np.concatenate((pair_a * count + token_a, pair_b * count + token_b)),
                       kind="stable")  # two sorted runs: merged
        twice = both[1:][both[1:] == both[:-1]]  # a token in both names of a pair
        pair_s, token_s = twice // count, twice % count
        idf = self.token_idf

        def total(pairs: np.ndarray, weights: np.ndarray) -> np.ndarray:
            return np.bincount(pairs, weights=weights, minlength=len(named))

        shared = total(pair_s, idf[token_s])
        weight_a, weight_b = self.name_weight[name_a], self.name_weight[name_b]
        union = weight_a + weight_b - shared
        typo_idf = idf * self.token_typo
        shared_typo = total(pair_s, typo_idf[token_s])
        # a typo adds a word of a to the shared weight and takes one of b from the union
        # (`name_similarity`): first as if every unshared word that can be a typo were one,
        # then, where that could still reach `needed`, only the words within a typo of one
        # of the other name's
        gain = total(pair_a, typo_idf[token_a]) - shared_typo
        loss = total(pair_b, typo_idf[token_b]) - shared_typo
        fixed = union - shared - gain - loss  # unshared and never typos
        bound = _typo_bound(shared, union, gain, loss, fixed)
        check = np.flatnonzero((bound >= needed - 1e-9) & (gain > 1e-12) & (loss > 1e-12))
        if len(check):
            place = np.full(len(named), -1)  # a pair's number within `check`
            place[check] = np.arange(len(check))
            keep_a, keep_b, keep_s = place[pair_a] >= 0, place[pair_b] >= 0, place[pair_s] >= 0
            gain_c, loss_c = self._typo_weights(
                place[pair_a[keep_a]], token_a[keep_a], place[pair_b[keep_b]], token_b[keep_b],
                place[pair_s[keep_s]] * count + token_s[keep_s], len(check))
            gain[check], loss[check] = gain_c, loss_c
            bound[check] = _typo_bound(shared[check], union[check], gain_c, loss_c,
                                       fixed[check])
        upper[named] = bound
        return upper

    def _typo_weights(self, pair_a: np.ndarray, token_a: np.ndarray, pair_b: np.ndarray,
                      token_b: np.ndarray, twice: np.ndarray, pairs: int
                      ) -> tuple[np.ndarray, np.ndarray]:
        """For each pair, the weight of a's unshared words within a typo (rapidfuzz ratio
        80, in C) of one of b's unshared words, and of those words of b."""
        count = len(self.token_text)

        def unshared(pair: np.ndarray, token: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            keys = pair * count + token  # shared: found in `twice` (sorted)
            at = np.minimum(np.searchsorted(twice, keys), max(len(twice) - 1, 0))
            shared = twice[at] == keys if len(twice) else np.zeros(len(keys), dtype=bool)
            keep = self.token_typo[token] & ~shared
            order = np.argsort(pair[keep], kind="stable")
            return pair[keep][order], token[keep][order]

        pa, ta = unshared(pair_a, token_a)
        pb, tb = unshared(pair_b, token_b)
        many_a = np.bincount(pa, minlength=pairs)
        many_b = np.bincount(pb, minlength=pairs)
        combos = many_a * many_b  # every word of a against every word of b, pair by pair
        if not combos.any():
            return np.zeros(pairs), np.zeros(pairs)
        start_a = np.cumsum(many_a) - many_a
        start_b = np.cumsum(many_b) - many_b
        pair = np.repeat(np.arange(pairs), combos)
        offset = np.arange(int(combos.sum())) - np.repeat(np.cumsum(combos) - combos, combos)
        index_a = start_a[pair] + offset // many_b[pair]
        index_b = start_b[pair] + offset % many_b[pair]
        near = self._near(ta[index_a], tb[index_b])
        idf = self.token_idf
        word_a = np.zeros(len(ta), dtype=bool)
        word_a[index_a[near]] = True
        word_b = np.zeros(len(tb), dtype=bool)
        word_b[index_b[near]] = True
        return (np.bincount(pa[word_a], weights=idf[ta[word_a]], minlength=pairs),
                np.bincount(pb[word_b], weights=idf[tb[word_b]], minlength=pairs))

    def _near(self, token_a: np.ndarray, token_b: np.ndarray) -> np.ndarray:
        """Which of these word pairs are within a typo (rapidfuzz ratio TYPO_RATIO, in C), each
        distinct pair compared once; words too different in length (ratio = 1 - edits /
        total length, and the edits are at least the difference) are not compared."""
        size = self.token_size
        gap, total = np.abs(size[token_a] - size[token_b]), size[token_a] + size[token_b]
        near = np.zeros(len(token_a), dtype=bool)
        maybe = np.flatnonzero(gap * 100 <= (100 - TYPO_RATIO) * total)
        which, distinct = pd.factorize(token_a[maybe].astype(np.int64) * len(size)
                                       + token_b[maybe])
        text = self.token_text
        ratio = process.cpdist([text[t] for t in (distinct // len(size)).tolist()],
                               [text[t] for t in (distinct % len(size)).tolist()],
                               scorer=fuzz.ratio, score_cutoff=TYPO_RATIO, workers=-1,
                               dtype=np.uint8)
        near[maybe] = (np.asarray(ratio) >= TYPO_RATIO)[which]
        return near

    def _gather(self, names: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each token of each name: the name's place in `names`, and the token."""
        starts = self.token_start[names]
        lengths = self.token_start[names + 1] - starts
        place = np.repeat(np.arange(len(names)), lengths)
        offsets = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths,
                                                            lengths)
        return place, self.token_ids[np.repeat(starts, lengths) + offsets]

    def learn(self, positions: list[int]) -> None:
        """The tokens of the names of the records at `positions` as text, and their rarity,
        for `tokens_of`."""
        codes = np.array(sorted({int(c) for c in self.name_code[positions].tolist()}
                                - self._tokens.keys()), dtype=np.int64)
        if -1 in codes:
            self._tokens[-1] = (frozenset(), 0.0)
            codes = codes[codes >= 0]
        place, token = self._gather(codes)
        text = self.token_text
        words = [text[t] for t in token.tolist()]
        self.idf.update(zip(words, self.token_idf[token].tolist(), strict=True))
        bounds = np.searchsorted(place, np.arange(len(codes) + 1)).tolist()
        for i, code in enumerate(codes.tolist()):
            self._tokens[code] = (frozenset(words[bounds[i]:bounds[i + 1]]),
                                  float(self.name_weight[code]))

    def tokens_of(self, p: int) -> tuple[frozenset[str], float]:
        """The tokens of the name of the record at position p and their weight, their rarity
        known to `name_similarity` (cached by name)."""
        code = int(self.name_code[p])
        if code not in self._tokens:
            self.learn([p])
        return self._tokens[code]

    def name_similarity(self, a: tuple[frozenset[str], float],
                        b: tuple[frozenset[str], float], needed: float = 0.0) -> float:
        """Weighted Jaccard of two names' tokens (weights: rarity in the sheet), a long word
        of one within a typo of a word of the other counting as shared; a and b from
        `tokens_of`. 0 when it cannot reach `needed`."""
        (ta, weight_a), (tb, weight_b) = a, b
        if not ta or not tb:
            return 0.0
        idf = self.idf
        shared = ta & tb
        shared_weight = sum(map(idf.__getitem__, shared))
        union_weight = weight_a + weight_b - shared_weight
        if len(shared) < min(len(ta), len(tb)):  # a near-identical long word is a typo
            only_a, only_b = ta - shared, tb - shared
            if needed:  # words that cannot be typos stay outside the shared weight
                fixed = sum(idf[t] for t in chain(only_a, only_b) if not _typo_word(t))
                if fixed > (1 - needed) * union_weight:
                    return 0.0
            spare = sorted(v for v in only_b if _typo_word(v))  # sorted: one result
            for u in sorted(only_a):
                if not _typo_word(u):
                    continue
                for v in spare:
                    if fuzz.ratio(u, v, score_cutoff=TYPO_RATIO):
                        shared_weight += idf[u]
                        union_weight -= idf[v]
                        spare.remove(v)  # one word pairs with one word
                        break
        return shared_weight / union_weight if union_weight > 0 else 0.0


def _identifier_keys(phone: pd.Series, email: pd.Series, tax_raw: pd.Series,
                     address: pd.Series, city: pd.Series, person: np.ndarray, region: str,
                     id_numbers: pd.Series, births: pd.Series
                     ) -> list[tuple[np.ndarray, list[Any]]]:
    """Codes and keys of phones, e-mails, company domains, tax IDs, other tax numbers (or,
    where a record has none, its ID number from an extra column, marked `ID_MARK`), people's
    addresses, cities and dates of birth (see `Keys`)."""
    phone_code, phones = _keyed(phone, many=partial(nz.phone_keys, region=region))
    email_code, emails = _keyed(email, many=nz.email_keys)
    domains = [e[e.rindex("@") + 1:] for e in emails]
    domain = _recode(email_code, [None if d in FREE_MAIL else d for d in domains])
    tax_code, taxes = _keyed(tax_raw, many=nz.tax_id_keys)
    # a tax number that is not a valid unified code (a foreign VAT or EIN, a typo) still
    # identifies, less surely: compared as upper-case letters and digits
    other = tax_raw.where(tax_code < 0, None).astype(object)
    has_ids = id_numbers.notna().to_numpy()
    if has_ids.any():  # an ID-number column: its numbers where there is no tax number
        no_tax = other.map(nz.is_blank).to_numpy(dtype=bool) & (tax_code < 0)
        ids = id_numbers.where(no_tax & ~id_numbers.map(nz.is_blank).to_numpy(dtype=bool),
                               None)
        other = other.where(~no_tax, ids.map(lambda v: None if v is None else (ID_MARK, v)))
    uid = _keyed(other, _uid_key)
    addresses = _keyed(address.where(person, None),
                       lambda v: nz.name_words(v) if len(nz.text(v)) >= 6 else None)
    cities = _keyed(city, many=lambda v: [c.replace(" ", "") for c in  # company_key
                                          nz.name_words_many(v)])
    if births.notna().any():  # a date-of-birth column: people's dates as YYYYMMDD
        born = nz.date_column(births.where(person, None)).dt.strftime("%Y%m%d")
        birth = _keyed(born.astype(object).where(born.notna(), None), lambda v: v)
    else:
        birth = (np.full(len(births), -1, dtype=np.int64), [])
    return [(phone_code, phones), (email_code, emails), domain, (tax_code, taxes), uid,
            addresses, cities, birth]


PARALLEL_FROM = 200_000  # records from which identifiers are keyed in a forked child


def _typo_bound(shared: np.ndarray, union: np.ndarray, gain: np.ndarray, loss: np.ndarray,
                fixed: np.ndarray) -> np.ndarray:
    """The highest name similarity a pair can have: its shared weight over its union when no
    word can be a typo; else with typos adding at most `gain` to the shared weight and taking
    at most `loss` from the union, and never above 1 - (words that stay unshared) / union."""
    with np.errstate(divide="ignore", invalid="ignore"):
        exact = np.where(union > 0, shared / union, 0.0)
        with_typos = np.where(union - loss > 0, (shared + gain) / (union - loss), 1.0)
        by_fixed = np.where(union > 0, 1 - fixed / union, 0.0)
    typos = (gain > 1e-12) & (loss > 1e-12)
    return np.where(typos, np.minimum(np.minimum(with_typos, 1.0), by_fixed), exact)


def _typo_word(token: str) -> bool:
    """Whether a token can be a typo of another: a word of four or more letters, not Chinese
    (Chinese tokens are character pairs)."""
    return len(token) >= 4 and not _CJK.match(token)


def _tokenise(names: list[str]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The distinct tokens of each name for a million names (words; Chinese runs as
    character pairs, a lone character alone), with numpy over the names' code points
    (`_hash_tokens`, 100,000 names at a time). Returns the name of each (name, token) pair
    and its token's number, sorted by name then token, and each number's text."""
    parts = [_hash_tokens(names[start:start + 100_000], start)
             for start in range(0, len(names), 100_000)]
    ids, distinct = pd.factorize(np.concatenate([p[1] for p in parts] + [_NO_HASH]))
    texts = [""] * len(distinct)
    number = pd.Index(distinct)
    for _, _, hashes, words in parts:
        for i, word in zip(number.get_indexer(hashes).tolist(), words, strict=True):
            texts[i] = word
    count = max(len(distinct), 1)
    key = np.concatenate([p[0] for p in parts] + [_NO_NAME]).astype(np.int64) * count
    key += ids
    del parts, ids
    key.sort()
    keep = np.ones(len(key), dtype=bool)
    keep[1:] = key[1:] != key[:-1]  # a token twice in one name counts once
    key = key[keep]
    return key // count, (key % count).astype(np.int32), texts


_WORD_HASH = np.uint64(0x100000001B3)  # FNV's prime, for a polynomial hash of a word
_WORD_BIT = np.uint64(1 << 63)  # set in words' hashes; Chinese tokens (< 2**32) lack it
_NO_HASH = np.zeros(0, dtype=np.uint64)
_NO_NAME = np.zeros(0, dtype=np.int32)


def _hash_tokens(names: list[str], first_name: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """The tokens of each name (a repeated one repeated): words (runs of a-z and 0-9) by a
    64-bit hash of their letters, Chinese character pairs (a lone character alone) by their
    code points. Returns each token's name (counted from `first_name`) and hash, and each
    distinct hash with its text."""
    joined = "\n".join(names)
    points = np.frombuffer(joined.encode("utf-32-le"), dtype=np.uint32)
    lengths = np.fromiter(map(len, names), dtype=np.int64, count=len(names))
    name_of = np.repeat(np.arange(len(names)), lengths + 1)[:len(points)]
    letter = ((points >= 97) & (points <= 122)) | ((points >= 48) & (points <= 57))
    chinese = (points >= 0x3400) & (points <= 0x9FFF)
    at = np.flatnonzero(letter)  # words
    starts = np.ones(len(at), dtype=bool)
    starts[1:] = at[1:] != at[:-1] + 1
    first = np.flatnonzero(starts)
    word_size = np.diff(np.append(first, len(at)))
    offset = np.arange(len(at)) - np.repeat(first, word_size)
    with np.errstate(over="ignore"):  # the hash is modulo 2**64
        powers = np.ones(int(offset.max(initial=0)) + 1, dtype=np.uint64)
        for i in range(1, len(powers)):
            powers[i] = powers[i - 1] * _WORD_HASH
        word_hash = (np.add.reduceat(points[at].astype(np.uint64) * powers[offset], first)
                     if len(at) else _NO_HASH)
        word_hash = (word_hash * _WORD_HASH + word_size.astype(np.uint64)) | _WORD_BIT
    before = np.zeros(len(points), dtype=bool)
    before[1:] = chinese[:-1]
    after = np.zeros(len(points), dtype=bool)
    after[:-1] = chinese[1:]
    pair_at = np.flatnonzero(chinese & after)
    lone_at = np.flatnonzero(chinese & ~before & ~after)
    pair_hash = ((points[pair_at].astype(np.uint64) << np.uint64(16))
                 | points[pair_at + 1].astype(np.uint64))
    position = np.concatenate((at[first], pair_at, lone_at))
    size = np.concatenate((word_size, np.full(len(pair_at), 2), np.ones(len(lone_at),
                                                                         dtype=np.int64)))
    hashes = np.concatenate((word_hash, pair_hash, points[lone_at].astype(np.uint64)))
    ids, distinct = pd.factorize(hashes)
    # a token's text where it first occurs (factorize numbers tokens in that order)
    new = np.flatnonzero(ids > np.maximum.accumulate(np.concatenate(([-1], ids[:-1]))))
    words = [joined[p:p + n] for p, n in zip(position[new].tolist(), size[new].tolist(),
                                             strict=True)]
    return (name_of[position] + first_name).astype(np.int32), hashes, distinct, words


def _keyed(values: pd.Series, convert: Any = None, many: Any = None
           ) -> tuple[np.ndarray, list[Any]]:
    """Codes of a column's keys: `convert` (or `many`, on a list) runs once per distinct
    value, and values with one key share one code."""
    codes, distinct = pd.factorize(values)
    if many is not None:
        keys = many(list(distinct))
    else:
        keys = [None if nz.is_blank(v) else convert(v) for v in distinct]
    return _recode(codes, [k or None for k in keys])


def _recode(codes: np.ndarray, keys: list[Any]) -> tuple[np.ndarray, list[Any]]:
    """Codes into `keys` (by position) turned into codes of the distinct non-empty keys."""
    merged, distinct = pd.factorize(pd.Series(keys, dtype=object))
    merged = np.append(merged, -1).astype(np.int64)  # code -1 stays -1
    out_codes = merged[codes]
    out_keys = list(distinct)
    if "" in out_keys:  # an empty key is no key
        empty = out_keys.index("")
        out_codes[out_codes == empty] = -1
    return out_codes, out_keys


def _rank(values: list[Any]) -> np.ndarray:
    """Each value's place in sorted order (by position; one extra slot, -1, for "none")."""
    order = sorted(range(len(values)), key=values.__getitem__)
    rank = np.empty(len(values) + 1, dtype=np.int64)
    rank[order] = np.arange(len(values))
    rank[-1] = -1
    return rank


def _order(codes: np.ndarray, values: list[Any]) -> np.ndarray:
    """Positions with a value, in the order of their values."""
    positions = np.flatnonzero(codes >= 0)
    return positions[np.lexsort((positions, _rank(values)[codes[positions]]))]


def _group_pairs(codes: np.ndarray) -> Iterable[tuple[np.ndarray, np.ndarray]]:
    """Every pair of positions sharing a code, in groups of 2 to `MAX_BLOCK`."""
    positions = np.flatnonzero(codes >= 0)
    values = codes[positions]
    sizes = np.bincount(values)[values]
    keep = (sizes > 1) & (sizes <= MAX_BLOCK)
    positions, values = positions[keep], values[keep]
    order = np.argsort(values, kind="stable")
    positions, values = positions[order], values[order]
    for step in range(1, MAX_BLOCK):
        same = values[:-step] == values[step:]
        if not same.any():
            break
        yield positions[:-step][same], positions[step:][same]


@lru_cache(maxsize=100_000)
def _person_key(key: str | None) -> str | None:
    """A folded name read as a Chinese person's (`pinyin_words`, without spaces), for a
    record whose Customer Type is blank; None when it has no Chinese."""
    if not key or not _CJK.search(key):
        return None
    return pinyin_words(key).replace(" ", "")


def preload() -> None:
    """Import what the matcher may need later (pypinyin takes 0.3 s), while there is time
    (an import reads its source in a thread meanwhile)."""
    import pypinyin  # noqa: F401


def pinyin_words(name: str) -> str:
    """A Chinese person's name as pinyin syllables ("张伟" → "zhang wei"); other text kept."""
    from pypinyin import lazy_pinyin

    return " ".join(" ".join(lazy_pinyin(word)) if _CJK.search(word) else word
                    for word in name.split())


def generic_name(key: str | None, words: Iterable[str] = ()) -> bool:
    """A folded name too generic to identify a company by itself: a common industry word
    (科技, 园林, Trading), a region and such a word (the region is folded away already), two
    Chinese characters or fewer, or three letters or fewer. It needs a second, independent
    piece of evidence (a phone, e-mail, tax ID, company domain or address). `words`, the
    name's words: a name made only of industry and place words (Pacific Trading, Global
    Services) is generic too."""
    if not key:
        return True
    words = list(words)
    if words and all(w in GENERIC_WORDS or w in GENERIC_PLACES for w in words):
        return True
    if key in GENERIC_WORDS:
        return True
    if _CJK.search(key):
        return len(key) <= 2
    return len(key) <= 3


def one_typo_apart(a: str, b: str) -> bool:
    """Two numbers of one length that differ by one character, or by two neighbours swapped
    (4178304 / 4173804): the commonest ways to mistype a number."""
    if len(a) != len(b):
        return False
    wrong = [i for i, (u, v) in enumerate(zip(a, b, strict=True)) if u != v]
    return len(wrong) == 1 or (len(wrong) == 2 and wrong[1] == wrong[0] + 1
                               and a[wrong[0]] == b[wrong[1]] and a[wrong[1]] == b[wrong[0]])


ID_MARK = "ID:"  # an ID number's key starts so: never equal to a tax number's


def _uid_key(value: Any) -> str | None:
    """A tax number (or a marked ID number) as upper-case letters and digits, if long enough."""
    mark = ""
    if isinstance(value, tuple):
        mark, value = value
    return mark + u if len(u := _id_text(value)) >= 6 else None


def _number_reason(same: bool, a: str, b: str) -> str:
    """"same tax number X", "tax number X ~ Y", or the same of an ID number."""
    label = "ID number" if a.startswith(ID_MARK) else "tax number"
    a, b = a.removeprefix(ID_MARK), b.removeprefix(ID_MARK)
    return f"same {label} {a}" if same else f"{label} {a} ~ {b}"


def _id_text(value: Any) -> str:
    return re.sub(r"[^0-9A-Za-z]", "", nz.text(value)).upper()


def score_pair(records: _Columns, x: Keys, y: Keys, threshold: float = 0.0) -> Pair | None:
    """The evidence for two records being one customer: a score and, when it reaches
    `threshold`, the reasons (None below it)."""
    labels = ("tax ID", "phone", "e-mail", "company domain")
    values = ((x.tax, y.tax), (x.phone, y.phone), (x.email, y.email), (x.domain, y.domain))
    same = {label: u is not None and u == v for label, (u, v) in zip(labels, values,
                                                                      strict=True)}
    conflicts = [text for text, (u, v) in (("different phones", (x.phone, y.phone)),
                                           ("different tax IDs", (x.tax, y.tax)))
                 if u and v and u != v]
    ca, cb = x.city, y.city
    if ca and cb and ca != cb and fuzz.ratio(ca, cb) < 80:  # a typo is not another city
        conflicts.append("different cities")
    ua, ub = x.uid, y.uid
    same_uid = ua is not None and ua == ub
    near_uid = bool(ua and ub and ua != ub and one_typo_apart(ua, ub))
    aa, ab = x.address, y.address
    address = fuzz.token_set_ratio(aa, ab) / 100 if aa and ab else 0.0
    if aa and ab and address < 0.5:
        conflicts.append("different addresses")
    same_birth = x.birth is not None and x.birth == y.birth
    if x.birth and y.birth and not same_birth and not one_typo_apart(x.birth, y.birth):
        conflicts.append("different birth dates")  # a typo in a date is one digit
    if conflicts and threshold > 0.7 and not (same["tax ID"] or same["phone"] or same["e-mail"]
                                              or same_uid or near_uid or address >= 0.9
                                              or same_birth):
        return None  # a name, or a shared domain, against a conflict scores 0.7 at most
    name = 1.0 if x.key and x.key == y.key else records.name_similarity(x.tokens, y.tokens)
    if name < 1.0 and x.person != y.person and (y.kindless if x.person else x.kindless) and \
            _person_key(y.key if x.person else x.key) == (x.key if x.person else y.key):
        name = 1.0  # 张杰 without a Customer Type is the person 张杰 (zhangjie) when it is one
    strong = same["phone"] or same["e-mail"]  # one person's line or mailbox
    domain_only = same["company domain"] and not strong
    if same["tax ID"]:
        score = 0.99
    elif "different tax IDs" in conflicts:
        score = min(0.5, 0.5 * name)  # two legal entities, whatever else they share
    elif "different birth dates" in conflicts and not (strong or same_uid or near_uid):
        score = min(0.5, 0.5 * name)  # two people (a father and son at one address)
    elif strong and name >= 0.8:
        score = 0.9 + 0.09 * name
    elif strong and name >= 0.5:
        score = 0.86
    elif strong:
        score = 0.6  # one switchboard, two companies
    elif same_uid:  # a tax number identifies one entity whatever its name
        score = 0.95 if (name >= 0.3 or address >= 0.8 or not ca or not cb
                         or ca == cb) else 0.86
    elif near_uid and (name >= 0.8 or address >= 0.9):  # the same number mistyped, and
        score = 0.9  # the same name or (people) the same address
    elif near_uid and name >= 0.25 and ca and cb and "different cities" not in conflicts:
        score = 0.86  # ... or a name word and the city
    elif same_birth and (name >= 0.5 or (address >= 0.8 and name >= 0.2)) and not (
            "different phones" in conflicts or "different cities" in conflicts):
        score = 0.9  # one person: born the same day, and the name or the address agrees
    elif address >= 0.9 and name >= 0.6 and "different phones" not in conflicts:
        score = 0.9
    elif address >= 0.95 and name >= 0.25 and not conflicts:
        score = 0.86  # the same full address, the name changed (marriage, typo)
    elif domain_only and name >= 0.8 and not conflicts:
        score = 0.9
    elif domain_only and name >= 0.8:
        score = 0.7  # the same firm's branch in another city
    elif (name >= 0.95 and not conflicts and x.holders <= 2  # else a common name
          and not (generic_name(x.key, x.tokens[0]) or generic_name(y.key, y.tokens[0]))
          and (x.person or y.person or x.key == y.key or x.tokens[0] == y.tokens[0])):
        # a company's name alone must be the same words: one letter off in a brand is
        # another brand as often as a typo (Stripe / Strix, Tefule / Tefuue)
        score = 0.88
    else:
        score = 0.8 * name * (0.6 if conflicts else 1.0)
    score = round(min(score, 0.99), 3)
    if score < threshold:
        return None
    reasons = [f"same {label} {u}" for label, (u, _) in zip(labels, values, strict=True)
               if same[label]]
    if (same_uid or near_uid) and ua and ub:
        reasons.append(_number_reason(same_uid, ua, ub))
    if same_birth:
        reasons.append(f"same birth date {x.birth}")
    if address >= 0.9:
        reasons.append(f"address {round(address * 100)}%")
    if name > 0:
        reasons.append(f"name {round(name * 100)}%")
    return Pair(x.index, y.index, score, reasons + conflicts)


def find_duplicate_customers(frame: pd.DataFrame, region: str = "CN",
                             threshold: float = 0.85, gate: bool = True) -> list[Match]:
    """Clusters of customers scoring at least `threshold` with another member (transitively),
    with each pair's score and reasons. `gate=False` scores every candidate pair (slower;
    the result is the same, which a test checks)."""
    if frame.empty:
        return []
    records = _Columns(frame, region)
    a, b = records.candidates()
    needed = min(0.95, threshold / 0.8) if threshold <= 0.88 else threshold / 0.8
    if gate and needed > 0:
        # a pair with nothing but a similar name scores 0.88 from a similarity of 0.95, or
        # 0.8 × its similarity: below that similarity it cannot reach the threshold
        strong = records.evidence(a, b)
        weak = np.flatnonzero(~strong)
        weak = weak[records.could_reach(a[weak], b[weak], needed)]
        records.learn(np.concatenate((a[weak], b[weak])).tolist())
        similar = [i for i, x, y in zip(weak.tolist(), a[weak].tolist(), b[weak].tolist(),
                                        strict=True)
                   if records.name_similarity(records.tokens_of(x), records.tokens_of(y),
                                              needed) >= needed]
        chosen = np.sort(np.concatenate((np.flatnonzero(strong),
                                         np.asarray(similar, dtype=np.int64))))
        a, b = a[chosen], b[chosen]
    keys = records.records(np.sort(pd.unique(np.concatenate((a, b)))))
    pairs = [pair for x, y in zip(a.tolist(), b.tolist(), strict=True)
             if (pair := score_pair(records, keys[x], keys[y], threshold)) is not None]
    by_index: dict[Any, Keys] = {}  # made on the first call: most clusters are two records

    def apart(i: Any, j: Any) -> bool:
        """Two records that are two entities (different valid tax IDs; different phones in
        different cities: a branch) and do not match: never one cluster, whatever links
        them. Weaker contradictions (an address, a birth date typed wrong) do not split."""
        if not by_index:
            by_index.update((k.index, k) for k in keys.values())
        pair = score_pair(records, by_index[i], by_index[j])
        if pair is None or pair.score >= threshold:
            return False
        return "different tax IDs" in pair.reasons or (
            "different phones" in pair.reasons and "different cities" in pair.reasons)

    return _cluster(pairs, apart)


# ---------------------------------------------------------------------------------------------
# Every sheet

ID_FIELDS = {"customers": "customer_id", "opportunities": "opportunity_id",
             "interactions": "interaction_id"}


def find_duplicates(frame: pd.DataFrame, sheet_key: str, region: str = "CN",
                    threshold: float = 0.85, closed_stages: Iterable[str] = ()) -> list[Match]:
    """Duplicate clusters in one data sheet (customers, opportunities or interactions);
    `closed_stages` names the won and lost stages (Settings)."""
    progress.step("dedupe")
    if sheet_key == "customers":
        return find_duplicate_customers(frame, region, threshold)
    if sheet_key == "opportunities":
        return find_duplicate_opportunities(frame, threshold, closed_stages)
    return find_duplicate_interactions(frame, threshold)


def all_duplicates(sheets: dict[str, Any], region: str, threshold: float,
                   closed_stages: Iterable[str] = ()) -> dict[str, list[Match]]:
    """Clusters of every data sheet, keyed by sheet key (`sheets`: key -> SheetData)."""
    return {key: find_duplicates(sheets[key].frame, key, region, threshold, closed_stages)
            for key in ID_FIELDS}


def duplicate_sheet_rows(sheets: dict[str, Any], found: dict[str, list[Match]],
                         lang: str = "en") -> list[list[Any]]:
    """The Duplicates sheet: the clusters of every sheet, numbered on from one another."""
    rows: list[list[Any]] = []
    for key, matches in found.items():
        first = (rows[-1][0] + 1) if rows else 1
        rows += duplicate_rows(sheets[key].frame, sheets[key].name, matches, ID_FIELDS[key],
                               first, lang)
    return rows


# ---------------------------------------------------------------------------------------------
# Opportunities and interactions: the same deal (or touch) entered twice, not repeat business

TITLE_SIMILAR = 90  # rapidfuzz ratio (of the folded titles) from which two titles agree
NEIGHBOURS = 6  # within a sub-block sorted by date, each record is compared with the next ones
CLOSE_DAYS = 3  # created this close together: the same entry, typed twice
OVERLAP_DAYS = 90  # created this close together (or inside the other's period): concurrent
ENGINE_SUMMARIES = ("Deal won:", "赢单：")  # the interactions promotion writes
_DIGITS = re.compile(r"\d+")


def _with_columns(frame: pd.DataFrame, names: tuple[str, ...]) -> pd.DataFrame:
    """`frame` with every column in `names` (blank where it had none)."""
    missing = [n for n in names if n not in frame.columns]
    return frame.assign(**{n: None for n in missing}) if missing else frame


def _row_codes(frame: pd.DataFrame, exclude: tuple[str, ...]) -> np.ndarray:
    """One code per row, the same for rows equal in every column but `exclude`: each column
    factorised (in C), the codes combined (a 64-bit rolling hash, then factorised again)."""
    combined = np.zeros(len(frame), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for column in frame.columns:
            if column in exclude:
                continue
            codes, _ = pd.factorize(frame[column].astype(object), use_na_sentinel=True)
            combined = combined * np.uint64(1_000_003) + (codes.astype(np.int64) + 1).astype(
                np.uint64)
    out, _ = pd.factorize(combined)
    return np.asarray(out, dtype=np.int64)


def _codes(values: list[Any]) -> np.ndarray:
    """Integer codes of hashable values (None and "" → -1)."""
    codes, _ = pd.factorize(pd.Series([v if v not in ("", None) else None for v in values],
                                      dtype=object))
    return np.asarray(codes, dtype=np.int64)


def _window_pairs(group: np.ndarray, order_key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of positions in the same `group` code (≥ 0), each with its next NEIGHBOURS in
    `order_key` order: a large group is sub-blocked by order, never skipped."""
    positions = np.flatnonzero(group >= 0)
    order = positions[np.lexsort((positions, order_key[positions], group[positions]))]
    firsts, seconds = [], []
    for step in range(1, NEIGHBOURS + 1):
        same = group[order[:-step]] == group[order[step:]]
        firsts.append(order[:-step][same])
        seconds.append(order[step:][same])
    return np.concatenate(firsts), np.concatenate(seconds)


def _unique_pairs(pairs: list[tuple[np.ndarray, np.ndarray]], size: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    a = np.concatenate([p[0] for p in pairs]).astype(np.int64)
    b = np.concatenate([p[1] for p in pairs]).astype(np.int64)
    joined = np.unique(np.minimum(a, b) * size + np.maximum(a, b))
    return joined // size, joined % size


def _days(series: pd.Series) -> np.ndarray:
    """Dates as float days since the epoch (NaN when blank)."""
    values: np.ndarray = nz.date_column(series).to_numpy(dtype="datetime64[D]")
    out: np.ndarray = values.astype(np.int64).astype(float)
    out[np.isnat(values)] = np.nan
    return out


def _title_numbers(titles: pd.Series) -> list[str | None]:
    """The numbers inside each title (order, contract, invoice numbers, years), as one key."""
    def numbers(value: Any) -> str | None:
        found = sorted(set(_DIGITS.findall(nz.text(value).translate(_FULL_DIGITS))))
        return " ".join(found) or None

    return list(nz.map_unique(titles, numbers))


_FULL_DIGITS = str.maketrans("０１２３４５６７８９", "0123456789")


def find_duplicate_opportunities(frame: pd.DataFrame, threshold: float = 0.85,
                                 closed_stages: Iterable[str] = ()) -> list[Match]:
    """The same deal entered twice, told apart from repeat business (the same customer buying
    again) by evidence:

    - needed: the same customer (or prospect company) and titles within `TITLE_SIMILAR`;
    - vetoes: different numbers inside the titles ("Order #1001" / "#1002", "2025" / "2026");
      amounts that differ by more than 1 %; one deal closed before the other was created
      (sequential: repeat business); created over `OVERLAP_DAYS` apart with neither period
      holding the other's creation;
    - evidence: created within `CLOSE_DAYS` (+0.15) or open at the same time (+0.10: both at
      an open stage, or one's known period holding the other's creation), the same
      amount (+0.10), the same title (+0.04), on 0.70; counter-evidence: different owners
      (−0.10). At the default threshold (0.85) a pair needs its dates to agree: the same
      title and amount alone are what repeat business looks like. A pair identical in every
      field but its ID scores 0.99.

    Records are blocked by customer, then sub-blocked by folded title and by amount, each
    compared with its `NEIGHBOURS` in creation order: linear, and no block is skipped."""
    size = len(frame)
    if size < 2:
        return []
    frame = _with_columns(frame, ("customer_id", "company", "title", "amount", "created_at",
                                  "closed_at", "expected_close", "owner", "stage"))
    customer = [nz.record_id(c) or ("company:" + nz.company_key(p) if not nz.is_blank(p)
                                    else "") for c, p in zip(frame["customer_id"],
                                                            frame["company"], strict=True)]
    shown = [nz.text(c) or nz.text(p) for c, p in zip(frame["customer_id"], frame["company"],
                                                       strict=True)]
    folded = list(nz.map_unique(frame["title"], lambda t: nz.name_words(t) or None))
    title_key = [None if t is None else " ".join(sorted(_DIGITS.sub(" ", t).split()))
                 for t in folded]
    numbers = _codes(_title_numbers(frame["title"]))
    amount = nz.number_column(frame["amount"]).to_numpy(dtype=float)
    created = _days(frame["created_at"])
    closed = _days(frame["closed_at"])
    expected = _days(frame["expected_close"])
    end = np.where(np.isnan(closed), expected, closed)
    shut = {nz.record_id(s) for s in closed_stages}
    is_open = np.isnan(closed) & ~np.array([nz.record_id(v) in shut for v in frame["stage"]],
                                            dtype=bool)
    people = _codes([nz.record_id(v) for v in frame["owner"]])
    identical = _row_codes(frame, exclude=("opportunity_id", "_row"))

    owner_code = _codes(customer)
    has_owner = (owner_code >= 0) & np.array([t is not None for t in folded])
    order = np.where(np.isnan(created), np.inf, created)
    passes = []
    for sub in (_codes(title_key), _codes([None if np.isnan(x) else round(x, 2)
                                           for x in amount])):
        group = np.where(has_owner & (sub >= 0), owner_code * (sub.max() + 1) + sub, -1)
        passes.append(_window_pairs(_codes(group.tolist()), order))
    passes.append(_window_pairs(np.where(has_owner, identical, -1), order))
    a, b = _unique_pairs(passes, size)
    a, b = a[owner_code[a] == owner_code[b]], b[owner_code[a] == owner_code[b]]
    if not len(a):
        return []
    same_all = identical[a] == identical[b]
    # vetoes, all at once
    ok = ~((numbers[a] >= 0) & (numbers[b] >= 0) & (numbers[a] != numbers[b]))
    both_amounts = ~np.isnan(amount[a]) & ~np.isnan(amount[b])
    same_amount = both_amounts & (np.abs(amount[a] - amount[b])
                                  <= 0.01 * np.maximum(np.abs(amount[a]), np.abs(amount[b])))
    ok &= ~both_amounts | same_amount
    gap = np.abs(created[a] - created[b])
    sequential = ((closed[a] < created[b]) | (closed[b] < created[a]))
    open_a, open_b = is_open[a] | ~np.isnan(closed[a]), is_open[b] | ~np.isnan(closed[b])
    holds = (open_a & (created[a] <= created[b]) & (created[b] <= end[a])) | (
        open_b & (created[b] <= created[a]) & (created[a] <= end[b]))
    both_open = is_open[a] & is_open[b]
    ok &= ~sequential
    ok &= np.isnan(gap) | (gap <= OVERLAP_DAYS) | holds
    ok |= same_all
    a, b, gap, same_amount, holds, same_all, both_open = (
        x[ok] for x in (a, b, gap, same_amount, holds, same_all, both_open))
    similar = process.cpdist([folded[i] for i in a.tolist()], [folded[i] for i in b.tolist()],
                             scorer=fuzz.ratio, workers=1) / 100 if len(a) else np.zeros(0)
    close = gap <= CLOSE_DAYS
    concurrent = ~close & ((both_open & (gap <= OVERLAP_DAYS)) | holds)
    other_owner = (people[a] >= 0) & (people[b] >= 0) & (people[a] != people[b])
    score = (0.70 + 0.15 * close + 0.10 * concurrent + 0.10 * same_amount
             + 0.04 * (similar >= 1.0) - 0.10 * other_owner)
    score = np.where(same_all, 0.99, np.minimum(score, 0.98))
    keep = (similar * 100 >= TITLE_SIMILAR) & (score >= threshold)
    pairs = []
    for i in np.flatnonzero(keep).tolist():
        x, y = int(a[i]), int(b[i])
        reasons = [f"same customer {shown[x]}"]
        if same_all[i]:
            reasons.append("identical but for the ID")
        else:
            reasons.append(f"title {round(similar[i] * 100)}%")
            if same_amount[i]:
                reasons.append(f"same amount {nz.text(frame['amount'].iat[x])}")
            if close[i]:
                reasons.append(f"created {int(gap[i])} days apart")
            elif concurrent[i]:
                reasons.append("open at the same time")
            if other_owner[i]:
                reasons.append("different owners")
        pairs.append(Pair(frame.index[x], frame.index[y], round(float(score[i]), 3), reasons))
    return _cluster(pairs)


def engine_made(frame: pd.DataFrame) -> np.ndarray:
    """Interactions promotion wrote ("Deal won: …"): never duplicates of one another."""
    if "summary" not in frame.columns:
        return np.zeros(len(frame), dtype=bool)
    return np.array([nz.text(s).startswith(ENGINE_SUMMARIES) for s in frame["summary"]],
                    dtype=bool)


def find_duplicate_interactions(frame: pd.DataFrame, threshold: float = 0.85) -> list[Match]:
    """The same customer, day and type, with a near-identical summary whose numbers agree;
    the interactions the engine wrote itself are left out. Sub-blocked by summary order, so no
    block is skipped."""
    size = len(frame)
    if size < 2:
        return []
    frame = _with_columns(frame, ("customer_id", "date", "kind", "summary"))
    day = nz.date_column(frame["date"]).to_numpy(dtype="datetime64[D]")
    customer = _codes(list(nz.map_unique(frame["customer_id"], nz.record_id)))
    kind = _codes(list(nz.map_unique(frame["kind"], nz.record_id)))
    valid = ~np.isnat(day) & (customer >= 0) & ~engine_made(frame)
    days = np.where(np.isnat(day), 0, day.astype(np.int64))
    key = pd.DataFrame({"c": customer, "d": days, "k": kind})[valid]
    block = np.full(size, -1, dtype=np.int64)
    block[valid] = key.groupby(["c", "d", "k"], sort=False).ngroup().to_numpy()
    summary = [nz.text(s).casefold() for s in frame["summary"]]
    numbers = _codes(_title_numbers(frame["summary"]))
    a, b = _unique_pairs([_window_pairs(block, _codes(summary).astype(float))], size)
    if not len(a):
        return []
    similar = process.cpdist([summary[i] for i in a.tolist()], [summary[i] for i in b.tolist()],
                             scorer=fuzz.ratio, workers=1) / 100
    ok = (similar * 100 >= TITLE_SIMILAR) & ~((numbers[a] >= 0) & (numbers[b] >= 0)
                                              & (numbers[a] != numbers[b]))
    pairs = [Pair(frame.index[int(a[i])], frame.index[int(b[i])],
                  round(0.85 + 0.14 * float(similar[i]), 3),
                  ["same customer, day and type", f"summary {round(similar[i] * 100)}%"])
             for i in np.flatnonzero(ok).tolist()]
    return _cluster([p for p in pairs if p.score >= threshold])


def _cluster(pairs: list[Pair], apart: Any = None) -> list[Match]:
    """Connected pairs as clusters. With `apart(i, j)` (records that must not be one), the
    pairs join clusters strongest first, and a pair that would put two such records in one
    cluster is left out: a record with no city or phone that matches a head office and its
    branch joins only one of them."""
    parent: dict[Any, Any] = {}
    members: dict[Any, list[Any]] = {}

    def find(i: Any) -> Any:
        parent.setdefault(i, i)
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    if apart is not None:
        kept = []
        def strength(p: Pair) -> tuple[float, int, str, str]:  # fewer contradictions first
            return (-p.score, sum(r.startswith("different ") for r in p.reasons), str(p.a),
                    str(p.b))

        for pair in sorted(pairs, key=strength):
            ra, rb = find(pair.a), find(pair.b)
            if ra != rb:
                group_a, group_b = members.get(ra, [pair.a]), members.get(rb, [pair.b])
                # two lone records are not apart: their own pair reached the threshold
                if (len(group_a) > 1 or len(group_b) > 1) and any(
                        apart(i, j) for i in group_a for j in group_b):
                    continue
                parent[rb] = ra
                members[ra] = group_a + group_b
                members.pop(rb, None)
            kept.append(pair)
        pairs = kept
        parent.clear()
    for pair in pairs:
        parent[find(pair.b)] = find(pair.a)
    clusters: dict[Any, list[Any]] = defaultdict(list)
    for i in {p.a for p in pairs} | {p.b for p in pairs}:
        clusters[find(i)].append(i)
    by_root: dict[Any, list[Pair]] = defaultdict(list)
    for pair in pairs:
        by_root[find(pair.a)].append(pair)
    return sorted((Match(sorted(indices), sorted({r for p in by_root[root] for r in p.reasons}),
                         max(p.score for p in by_root[root]), by_root[root])
                   for root, indices in clusters.items()), key=lambda m: m.indices[0])
