"""Realistic sample records (Chinese and English companies) for `init --sample` and the demo.

Everything is drawn from a seeded random generator relative to `today`, so a given
(n, lang, seed, today) always gives the same records. With `mistakes=True` a handful of
realistic errors are planted; `PLANTED` names the issue code each one should raise.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field
from typing import Any

import phonenumbers
from stdnum.cn import uscc

from . import schema
from .schema import Lang
from .settings import Settings, default_settings

CITIES = (("上海", "Shanghai", "310000", "021"), ("北京", "Beijing", "110000", "010"),
          ("深圳", "Shenzhen", "440300", "0755"), ("杭州", "Hangzhou", "330100", "0571"),
          ("苏州", "Suzhou", "320500", "0512"), ("广州", "Guangzhou", "440100", "020"),
          ("成都", "Chengdu", "510100", "028"), ("南京", "Nanjing", "320100", "025"),
          ("武汉", "Wuhan", "420100", "027"), ("宁波", "Ningbo", "330200", "0574"))
BRANDS_ZH = (("华信", "huaxin"), ("恒通", "hengtong"), ("瑞丰", "ruifeng"), ("博远", "boyuan"),
             ("金桥", "jinqiao"), ("天成", "tiancheng"), ("宏达", "hongda"), ("鼎盛", "dingsheng"),
             ("明德", "mingde"), ("新锐", "xinrui"), ("永安", "yongan"), ("安泰", "antai"),
             ("远航", "yuanhang"), ("众诚", "zhongcheng"), ("嘉禾", "jiahe"), ("星辰", "xingchen"),
             ("聚能", "juneng"), ("汇通", "huitong"), ("德胜", "desheng"), ("海纳", "haina"),
             ("凯旋", "kaixuan"), ("祥云", "xiangyun"), ("润泽", "runze"), ("卓越", "zhuoyue"))
TRADES_ZH = (("科技", "tech"), ("精密制造", "mfg"), ("贸易", "trade"), ("物流", "logistics"),
             ("医疗器械", "medical"), ("电子", "elec"), ("新材料", "materials"),
             ("软件", "soft"), ("机械", "machinery"), ("能源", "energy"))
BRANDS_EN = ("Acme", "Northwind", "Contoso", "Fabrikam", "Globex", "Initech", "Pioneer", "Summit",
             "Horizon", "Apex", "Vertex", "Bluewave", "Redwood", "Silverline", "Evergreen",
             "Ironclad", "Brightpath", "Lakeside", "Granite", "Harbor", "Keystone", "Meridian")
TRADES_EN = ("Industrial", "Technologies", "Logistics", "Medical", "Systems", "Trading", "Energy",
             "Software", "Electronics", "Materials")
LEGAL_EN = ("Ltd", "Inc", "Co., Ltd", "Corp", "GmbH", "LLC", "Limited")
SURNAMES = (("张", "zhang"), ("王", "wang"), ("李", "li"), ("刘", "liu"), ("陈", "chen"),
            ("杨", "yang"), ("赵", "zhao"), ("黄", "huang"), ("周", "zhou"), ("吴", "wu"),
            ("徐", "xu"), ("孙", "sun"), ("马", "ma"), ("朱", "zhu"), ("胡", "hu"))
GIVEN = (("伟", "wei"), ("芳", "fang"), ("敏", "min"), ("静", "jing"), ("强", "qiang"),
         ("磊", "lei"), ("洋", "yang"), ("艳", "yan"), ("勇", "yong"), ("军", "jun"),
         ("杰", "jie"), ("娟", "juan"), ("涛", "tao"), ("明", "ming"), ("超", "chao"),
         ("秀英", "xiuying"), ("建华", "jianhua"), ("志强", "zhiqiang"), ("海燕", "haiyan"))
FIRST_EN = ("James", "Mary", "John", "Linda", "Michael", "Sarah", "David", "Emma", "Daniel",
            "Olivia", "Kevin", "Grace", "Peter", "Helen", "Tom", "Lucy")
LAST_EN = ("Smith", "Johnson", "Brown", "Taylor", "Miller", "Wilson", "Moore", "Clark", "Hall",
           "Young", "King", "Wright", "Green", "Baker")
PRODUCTS = (("ERP 系统", "ERP rollout"), ("生产线改造", "production line upgrade"),
            ("年度维保合同", "annual maintenance contract"), ("仓储管理系统", "warehouse system"),
            ("数据中心扩容", "data centre expansion"), ("办公设备采购", "office equipment"),
            ("原材料年度采购", "raw material supply"), ("员工培训服务", "staff training"),
            ("质量检测设备", "quality inspection kit"),
            ("智能工厂咨询", "smart factory consulting"))
LOST_REASONS = (("价格太高", "Price too high"), ("选择了竞争对手", "Chose a competitor"),
                ("预算取消", "Budget cancelled"), ("需求变更", "Requirements changed"))
SUMMARIES = {
    0: ("电话沟通需求，客户关注交付周期", "Call about requirements; delivery time matters"),
    1: ("发送产品资料和报价说明", "Sent brochure and pricing notes"),
    2: ("与采购和技术负责人开会", "Meeting with purchasing and engineering leads"),
    3: ("上门拜访，参观生产现场", "On-site visit, toured the plant"),
    4: ("提交正式报价单", "Sent the formal quote"),
    5: ("售后回访，设备运行正常", "Service follow-up, equipment running fine"),
    6: ("客户投诉到货延迟，已安排补发", "Complaint about late delivery; replacement shipped"),
    7: ("其他沟通", "Other contact"),
}
OUTCOMES = (("进展顺利", "Positive"), ("待客户回复", "Awaiting reply"),
            ("需再跟进", "Needs follow-up"))
MOBILE_PREFIXES = ("130", "131", "132", "133", "135", "136", "137", "138", "139", "150", "151",
                   "152", "155", "156", "157", "158", "159", "180", "181", "182", "186", "187",
                   "188", "189", "199")
NEXT_STEPS = (("安排技术交流", "Technical workshop"), ("准备报价", "Prepare quote"),
              ("确认预算", "Confirm budget"))
STAGE_WEIGHTS = (20, 15, 15, 12, 8, 18, 12)  # Lead ... Won, Lost

# The issue code each planted mistake should raise, in the order they are planted.
PLANTED = ("unknown-customer", "invalid-email", "invalid-phone", "negative-amount",
           "lost-without-reason", "probability-range", "invalid-tax-id", "customer-mismatch",
           "unknown-owner", "invalid-date", "invalid-choice")


@dataclass
class SampleData:
    customers: list[dict[str, Any]] = field(default_factory=list)
    opportunities: list[dict[str, Any]] = field(default_factory=list)
    interactions: list[dict[str, Any]] = field(default_factory=list)


def sample_records(n: int, lang: Lang = "en", seed: int = 7, today: dt.date | None = None,
                   mistakes: bool = True, settings: Settings | None = None,
                   opportunities: int | None = None,
                   interactions: int | None = None) -> SampleData:
    """N customers, 2N opportunities and 5N interactions (unless given), keyed and consistent."""
    rng = random.Random(seed)
    today = today or dt.date.today()
    settings = settings or default_settings(lang)
    zh = lang == "zh"
    gen = _Generator(rng, today, settings, zh)
    data = SampleData()
    for i in range(1, n + 1):
        data.customers.append(gen.customer(i))
    for i in range(1, (2 * n if opportunities is None else opportunities) + 1):
        data.opportunities.append(gen.opportunity(i, data.customers))
    by_customer: dict[str, list[dict[str, Any]]] = {}
    for opp in data.opportunities:
        by_customer.setdefault(opp.get("customer_id") or "", []).append(opp)
    for i in range(1, (5 * n if interactions is None else interactions) + 1):
        data.interactions.append(gen.interaction(i, data.customers, by_customer))
    gen.roll_up(data)
    if mistakes and n >= 5:
        gen.plant(data)
    return data


class _Generator:
    def __init__(self, rng: random.Random, today: dt.date, settings: Settings, zh: bool):
        self.rng, self.today, self.settings, self.zh = rng, today, settings, zh
        self.idx = 0 if zh else 1  # the word lists are (Chinese, English)
        self.sales = [p.name for p in settings.people if p.role in ("sales", "manager")]
        self.service = [p.name for p in settings.people if p.role == "service"]
        self.names: set[str] = set()
        self.stages = sorted(settings.stages, key=lambda s: s.order)
        # what a clean sample must not repeat (it would be a duplicate record)
        self.titles: set[tuple[str, str]] = set()
        self.touches: set[tuple[str, dt.date, int]] = set()

    def pick(self, seq: Any) -> Any:
        return self.rng.choice(seq)

    def days_ago(self, low: int, high: int) -> dt.date:
        return self.today - dt.timedelta(days=self.rng.randint(low, high))

    def choice_list(self, key: str) -> list[str]:
        return self.settings.choices(key)

    def company(self) -> tuple[str, str, tuple[str, str, str, str]]:
        city = self.pick(CITIES)
        for _ in range(50):
            if self.rng.random() < (0.8 if self.zh else 0.3):
                brand, pinyin = self.pick(BRANDS_ZH)
                trade, short = self.pick(TRADES_ZH)
                legal = self.pick(("有限公司", "有限公司", "股份有限公司"))
                name = f"{city[0]}{brand}{trade}{legal}"
                domain = f"{pinyin}-{short}.cn"
            else:
                brand, trade = self.pick(BRANDS_EN), self.pick(TRADES_EN)
                name = f"{brand} {trade} {self.pick(LEGAL_EN)}"
                domain = f"{brand.lower()}{trade.lower()[:4]}.com"
            if name not in self.names:
                self.names.add(name)
                return name, domain, city
        name = f"{name} {len(self.names)}"
        self.names.add(name)
        return name, domain, city

    def person(self) -> tuple[str, str]:
        if self.zh or self.rng.random() < 0.5:
            (s, sp), (g, gp) = self.pick(SURNAMES), self.pick(GIVEN)
            return f"{s}{g}", f"{gp}.{sp}"
        first, last = self.pick(FIRST_EN), self.pick(LAST_EN)
        return f"{first} {last}", f"{first.lower()}.{last.lower()}"

    def phone(self, city: tuple[str, str, str, str]) -> str:
        while True:
            if self.rng.random() < 0.7:
                digits = self.pick(MOBILE_PREFIXES) + f"{self.rng.randint(0, 99999999):08d}"
                text = self.pick((f"{digits[:3]} {digits[3:7]} {digits[7:]}",
                                  f"+86 {digits[:3]}-{digits[3:7]}-{digits[7:]}", digits))
            else:
                local = f"{self.rng.randint(2, 8)}{self.rng.randint(0, 9999999):07d}"
                if len(city[3]) == 4:
                    local = local[:7]
                text = f"{city[3]}-{local}"
            parsed = phonenumbers.parse(text, "CN")
            if phonenumbers.is_valid_number(parsed):
                return str(text)

    def tax_id(self, city: tuple[str, str, str, str]) -> str:
        alphabet = "0123456789ABCDEFGHJKLMNPQRTUWXY"
        while True:
            body = "91" + city[2] + "".join(self.rng.choice(alphabet) for _ in range(9))
            code = body + uscc.calc_check_digit(body)
            if uscc.is_valid(code):
                return code

    def customer(self, i: int) -> dict[str, Any]:
        name, domain, city = self.company()
        contact, handle = self.person()
        individual = self.rng.random() < 0.08
        kinds = self.choice_list("customer_type")
        created = self.days_ago(200, 900)
        return {
            "customer_id": f"C-{i:06d}",
            "name": contact if individual else name,
            "kind": kinds[1] if individual else kinds[0],
            "industry": self.pick(self.choice_list("industry")),
            "tier": self.pick(self.choice_list("tier")),
            "owner": self.pick(self.sales),
            "contact_name": contact,
            "email": f"{handle}@{domain}" if not individual else f"{handle}@163.com",
            "phone": self.phone(city),
            "city": city[0] if self.zh else city[1],
            "address": (f"{city[0]}市{self.pick(('浦东新区', '高新区', '经开区', '工业园区'))}"
                        f"{self.rng.randint(1, 999)}号") if self.zh else
                       f"{self.rng.randint(1, 999)} {self.pick(('Park', 'Lake', 'Hill'))} Road, "
                       f"{city[1]}",
            "tax_id": None if individual else self.tax_id(city),
            "tags": self.pick(("", "VIP", "重点" if self.zh else "Key", "VIP、重点" if self.zh
                               else "VIP, Key")) or None,
            "source": self.pick(self.choice_list("source")),
            "created_at": created,
        }

    def opportunity(self, i: int, customers: list[dict[str, Any]]) -> dict[str, Any]:
        stage = self.rng.choices(self.stages, weights=STAGE_WEIGHTS[:len(self.stages)])[0]
        customer = self.pick(customers)
        prospect = stage.kind == "open" and self.rng.random() < 0.1
        created = self.days_ago(5, 360)
        age = max(0, (self.today - created).days)
        changed = created + dt.timedelta(days=self.rng.randint(0, age))
        if stage.kind == "open" and stage.max_days:
            recent = self.today - dt.timedelta(days=self.rng.randint(0, stage.max_days))
            changed = max(changed, recent)
            changed = max(changed, created)
        product = self.pick(PRODUCTS)
        company = (self.company()[0] if prospect else customer["name"])
        start = PRODUCTS.index(product)
        for step in range(len(PRODUCTS) + 1):  # another product when this one is taken
            product = PRODUCTS[(start + step) % len(PRODUCTS)]
            title = (f"{company[:8]}{product[0]}" if self.zh else
                     f"{product[1].capitalize()} – {company.split(' ')[0]}")
            if step == len(PRODUCTS):
                title = f"{title} ({i})"
            if (company, title) not in self.titles:
                break
        self.titles.add((company, title))
        contact, handle = self.person()
        amount = round(self.rng.lognormvariate(11.5, 1.0), -2)
        record: dict[str, Any] = {
            "opportunity_id": f"O-{i:06d}",
            "title": title,
            "customer_id": None if prospect else customer["customer_id"],
            "company": company if prospect else None,
            "contact_name": contact if prospect else customer["contact_name"],
            "contact_email": f"{handle}@example.com" if prospect else customer["email"],
            "contact_phone": None if prospect else customer["phone"],
            "stage": stage.name,
            "amount": amount,
            "currency": self.settings.options.default_currency if self.rng.random() < 0.9
            else "USD",
            "probability": None,
            "owner": customer["owner"],
            "source": self.pick(self.choice_list("source")),
            "created_at": created,
            "stage_changed_at": changed,
        }
        if stage.kind == "open":
            if stage.max_days and self.rng.random() < 0.05:  # a deal that got stuck
                changed = self.today - dt.timedelta(days=stage.max_days + self.rng.randint(5, 40))
                record["created_at"] = min(created, changed)
                record["stage_changed_at"] = changed
            record["expected_close"] = self.today + dt.timedelta(days=self.rng.randint(7, 150))
            if self.rng.random() < 0.93:
                record["next_follow_up"] = self.today + dt.timedelta(days=self.rng.randint(1, 14))
            record["next_step"] = self.pick(NEXT_STEPS)[self.idx]
        else:
            record["expected_close"] = changed
            record["closed_at"] = changed
            if stage.kind == "lost":
                record["lost_reason"] = self.pick(LOST_REASONS)[self.idx]
        return record

    def interaction(self, i: int, customers: list[dict[str, Any]],
                    by_customer: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
        customer = self.pick(customers)
        opps = by_customer.get(customer["customer_id"], [])
        kinds = self.choice_list("interaction_type")
        k = self.rng.randrange(len(kinds))
        day = self.days_ago(0, 180)
        while (customer["customer_id"], day, k) in self.touches:  # one touch of a kind a day
            day -= dt.timedelta(days=1)
        self.touches.add((customer["customer_id"], day, k))
        record = {
            "interaction_id": f"I-{i:06d}",
            "date": day,
            "customer_id": customer["customer_id"],
            "opportunity_id": self.pick(opps)["opportunity_id"] if opps and self.rng.random() < 0.6
            else None,
            "kind": kinds[k],
            "summary": SUMMARIES.get(k, SUMMARIES[7])[self.idx],
            "owner": customer["owner"],
            "outcome": self.pick(OUTCOMES)[self.idx],
        }
        if k == 5 and self.service:
            record["owner"] = self.pick(self.service)
            record["satisfaction"] = self.rng.randint(3, 5)
        return record

    def roll_up(self, data: SampleData) -> None:
        """Give customers the roll-ups and lifecycle their won deals imply."""
        won = {s.name for s in self.stages if s.kind == "won"}
        wins: dict[str, list[dict[str, Any]]] = {}
        for opp in data.opportunities:
            if opp["stage"] in won and opp.get("customer_id"):
                wins.setdefault(opp["customer_id"], []).append(opp)
        life = self.choice_list("lifecycle")
        for customer in data.customers:
            deals = wins.get(customer["customer_id"], [])
            customer["won_deals"] = len(deals)
            customer["lifecycle"] = life[min(len(deals), 2)]
            if deals:
                dates = sorted(d["closed_at"] for d in deals)
                customer["first_purchase"], customer["last_purchase"] = dates[0], dates[-1]
                customer["lifetime_value"] = sum(
                    d["amount"] for d in deals
                    if d["currency"] == self.settings.options.default_currency)
                if self.service:
                    customer["service_owner"] = self.pick(self.service)

    def plant(self, data: SampleData) -> None:
        """Plant one mistake per code in PLANTED, on records a user could have typed."""
        c, o, it = data.customers, data.opportunities, data.interactions
        open_opps = [x for x in o if self.settings.stage(x["stage"]).kind == "open"]  # type: ignore[union-attr]
        lost = [x for x in o if self.settings.stage(x["stage"]).kind == "lost"]  # type: ignore[union-attr]
        o[0]["customer_id"], o[0]["company"] = "C-999999", None
        c[1]["email"] = "sales@@" + c[1]["email"].split("@")[-1]
        c[2]["phone"] = "12345"
        o[1]["amount"] = -5000.0
        if lost:
            lost[0]["lost_reason"] = None
        o[2]["probability"] = 150
        tax = next((x for x in c[3:] if x.get("tax_id")), None)
        if tax:
            tax["tax_id"] = tax["tax_id"][:-1] + ("0" if tax["tax_id"][-1] != "0" else "1")
        linked = next((x for x in it if x.get("opportunity_id")), None)
        if linked:
            other = next(x for x in c if x["customer_id"] != linked["customer_id"])
            linked["customer_id"] = other["customer_id"]
        o[3]["owner"] = "赵六" if self.zh else "Zoe Unknown"
        if open_opps:
            open_opps[-1]["expected_close"] = "下周" if self.zh else "next week"
        c[4]["industry"] = "航天" if self.zh else "Aerospace"


def sample_rows(data: SampleData) -> dict[str, list[dict[str, Any]]]:
    return {schema.CUSTOMERS.key: data.customers, schema.OPPORTUNITIES.key: data.opportunities,
            schema.INTERACTIONS.key: data.interactions}
