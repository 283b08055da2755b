"""The Settings model: stages, people, lists, options and custom fields.

Read from the Settings sheet's tables (see `xlcrm.schema.SETTINGS_TABLES`); a table that is
missing falls back to the template's defaults in the workbook's language.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator

from . import schema
from .errors import SettingsInvalid
from .normalize import dayfirst, parse_fraction, parse_number
from .schema import Lang, normalize_value

StageKind = Literal["open", "won", "lost"]
Role = Literal["sales", "service", "manager"]
CustomType = Literal["text", "number", "date", "choice", "email", "phone"]

TAG_SEPARATORS = ",，;；、"


def split_choices(text: str) -> list[str]:
    """Split a list typed in one cell on any of , ， ; ； 、."""
    for sep in TAG_SEPARATORS[1:]:
        text = text.replace(sep, TAG_SEPARATORS[0])
    return [part.strip() for part in text.split(TAG_SEPARATORS[0]) if part.strip()]


class Stage(BaseModel):
    name: str
    probability: float = Field(ge=0, le=1)
    order: int = 0
    kind: StageKind = "open"
    max_days: int | None = Field(default=None, ge=0)

    @field_validator("probability", mode="before")
    @classmethod
    def _percent(cls, value: Any) -> Any:
        fraction = parse_fraction(value)
        return value if fraction is None else fraction

    @field_validator("kind", mode="before")
    @classmethod
    def _kind(cls, value: Any) -> Any:
        return schema.STAGE_KINDS.get(normalize_value(value), value) if value else "open"


class Person(BaseModel):
    name: str
    email: str | None = None
    role: Role = "sales"
    active: bool = True

    @field_validator("role", mode="before")
    @classmethod
    def _role(cls, value: Any) -> Any:
        return schema.ROLES.get(normalize_value(value), value) if value else "sales"

    @field_validator("active", mode="before")
    @classmethod
    def _active(cls, value: Any) -> Any:
        return parse_bool(value, default=True)


class CustomField(BaseModel):
    sheet: str
    column: str
    type: CustomType = "text"
    required: bool = False
    choices: list[str] = Field(default_factory=list)

    @field_validator("type", mode="before")
    @classmethod
    def _type(cls, value: Any) -> Any:
        words = {"文本": "text", "数字": "number", "日期": "date", "选项": "choice",
                 "邮箱": "email", "电话": "phone"}
        text = normalize_value(value) if value else "text"
        return words.get(text, text)

    @field_validator("required", mode="before")
    @classmethod
    def _required(cls, value: Any) -> Any:
        return parse_bool(value, default=False)

    @field_validator("choices", mode="before")
    @classmethod
    def _choices(cls, value: Any) -> Any:
        return split_choices(str(value)) if isinstance(value, str) else (value or [])


class ServiceRule(BaseModel):
    """A won customer whose `field` (city, industry or tier) equals `value` goes to `owner`."""

    field: str
    value: str
    owner: str

    @field_validator("field", mode="before")
    @classmethod
    def _field(cls, value: Any) -> Any:
        words = {"城市": "city", "行业": "industry", "客户等级": "tier", "等级": "tier"}
        text = normalize_value(value)
        return words.get(text, text)


class NotifyRule(BaseModel):
    """Settings → Notifications: on `event`, tell `recipients` through `channels`."""

    event: str
    recipients: list[str] = Field(default_factory=list)
    channels: list[str] = Field(default_factory=lambda: ["email"])
    threshold: float | None = None

    @field_validator("event", mode="before")
    @classmethod
    def _event(cls, value: Any) -> Any:
        text = normalize_value(value)
        for key, words in schema.NOTIFY_EVENTS.items():
            if text in {normalize_value(w) for w in (key, *words)}:
                return key
        raise ValueError(f"unknown event {value!r} (one of {', '.join(schema.NOTIFY_EVENTS)})")

    @field_validator("recipients", mode="before")
    @classmethod
    def _recipients(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value or []
        return [schema.NOTIFY_RECIPIENTS.get(normalize_value(v), v) for v in split_choices(value)]

    @field_validator("channels", mode="before")
    @classmethod
    def _channels(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value or ["email"]
        out = []
        for word in split_choices(value):
            channel = schema.NOTIFY_CHANNELS.get(normalize_value(word))
            if channel is None:
                raise ValueError(f"unknown channel {word!r} (email or webhook)")
            out.append(channel)
        return out

    @field_validator("threshold", mode="before")
    @classmethod
    def _threshold(cls, value: Any) -> Any:
        return parse_number(value) if isinstance(value, str) else value


class PoolRule(BaseModel):
    """Settings → Pool: when an owned customer goes back to the lead pool (公海). A row with a
    Tier applies to that tier; the row without one to every other customer. A blank number
    turns that rule off."""

    tier: str | None = None
    follow_up_days: int | None = Field(default=None, ge=1)
    win_days: int | None = Field(default=None, ge=1)
    warn_days: int = Field(default=3, ge=0)


class ExportStage(BaseModel):
    """Settings → ExportStages: what a stage is called in each CRM `xlcrm export` writes for
    (blank: the default pipeline's stage of the same kind and nearest probability)."""

    stage: str
    hubspot: str | None = None
    salesforce: str | None = None
    zoho: str | None = None
    odoo: str | None = None


DEFAULT_POOL_RULES = (PoolRule(follow_up_days=30, win_days=90, warn_days=3),)


class Options(BaseModel):
    """Free-form options, typed. Unknown option keys are kept in `extra`."""

    customer_id_prefix: str = "C-"
    opportunity_id_prefix: str = "O-"
    interaction_id_prefix: str = "I-"
    id_digits: int = Field(default=6, ge=1, le=12)
    default_currency: str = "CNY"
    phone_region: str = "CN"
    duplicate_threshold: float = Field(default=0.85, ge=0, le=1)
    no_follow_up_days: int = Field(default=14, ge=1)
    dormant_days: int = Field(default=180, ge=1)
    tier_thresholds: str = "A:500000; B:100000; C:0"
    date_order: str = "auto"
    exchange_rates: str = ""
    changelog_rows: int = Field(default=5000, ge=0, le=1_000_000)
    webhook_url: str = ""
    webhook_format: Literal["auto", "slack", "teams", "wecom", "dingtalk", "json"] = "auto"
    smtp_host: str = ""
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_security: Literal["none", "starttls", "ssl"] = "none"
    smtp_user: str = ""
    smtp_from: str = ""
    language: Lang | None = None
    pool_enabled: bool = False
    pool_exempt_open_deals: bool = True
    pool_exempt_won: bool = True
    pool_open_deals: Literal["keep", "release"] = "keep"
    pool_claims_per_day: int = Field(default=10, ge=0)
    pool_max_owned: int = Field(default=0, ge=0)
    pool_cooldown_days: int = Field(default=30, ge=0)
    pool_protect_days: int = Field(default=7, ge=0)
    edit_policy: Literal["off", "warn"] = "warn"
    mirror_url: str = ""
    extra: dict[str, str] = Field(default_factory=dict)

    @field_validator("pool_enabled", "pool_exempt_open_deals", "pool_exempt_won",
                     mode="before")
    @classmethod
    def _yes_no(cls, value: Any) -> Any:
        return parse_bool(value, default=False) if isinstance(value, str) else value

    @field_validator("pool_open_deals", "edit_policy", mode="before")
    @classmethod
    def _word(cls, value: Any) -> Any:
        words = {"保留": "keep", "释放": "release", "关闭": "off", "提醒": "warn"}
        return words.get(normalize_value(value), normalize_value(value)) if isinstance(
            value, str) else value


OPTION_DESCRIPTIONS: dict[str, tuple[str, str]] = {
    "customer_id_prefix": ("Prefix of new customer IDs", "新客户编号前缀"),
    "opportunity_id_prefix": ("Prefix of new opportunity IDs", "新商机编号前缀"),
    "interaction_id_prefix": ("Prefix of new interaction IDs", "新跟进记录编号前缀"),
    "id_digits": ("Digits in a new ID", "编号数字位数"),
    "default_currency": ("Currency of amounts left blank", "默认币种"),
    "phone_region": ("Region for phone numbers without +country code", "电话号码默认地区"),
    "duplicate_threshold": ("Score from which records count as duplicates (0–1)",
                            "疑似重复的判定阈值 (0–1)"),
    "no_follow_up_days": ("Days without an interaction before an open deal is flagged",
                          "未跟进提醒天数"),
    "dormant_days": ("Days without a deal or interaction before a customer is dormant",
                     "客户沉睡天数"),
    "tier_thresholds": ("Tier by lifetime value: tier:minimum, highest first",
                        "按累计成交金额分级：等级:最低金额，从高到低"),
    "date_order": ("How 03/11/2026 is read: DMY (day first), MDY (month first) or auto "
                   "(Chinese workbook: DMY; English: MDY)",
                   "03/11/2026 这类日期的读法：DMY（日在前）、MDY（月在前）或 auto"
                   "（中文工作簿按 DMY，英文按 MDY）"),
    "exchange_rates": ("Rates to the default currency for totals, e.g. USD:7.1; EUR:7.7 "
                       "(amounts in a currency without a rate are left out of totals)",
                       "换算成默认币种的汇率，例如 USD:7.1; EUR:7.7（没有汇率的币种不计入合计）"),
    "changelog_rows": ("Newest changes shown on the ChangeLog sheet (all are kept in the "
                       "history file)", "变更日志表显示的最新记录条数（全部记录保存在历史文件中）"),
    "webhook_url": ("Incoming webhook for notifications (Slack, Teams, WeCom, DingTalk); "
                    "blank = none",
                    "通知用的群机器人 Webhook 地址（企业微信、钉钉、Slack、Teams）；留空则不发送"),
    "webhook_format": ("Webhook payload: auto (from the address), slack, teams, wecom, "
                       "dingtalk or json", "Webhook 消息格式：auto（按地址判断）、slack、teams、"
                       "wecom、dingtalk 或 json"),
    "smtp_host": ("SMTP server for e-mail notifications; blank = no e-mail",
                  "发送邮件通知的 SMTP 服务器；留空则不发邮件"),
    "smtp_port": ("SMTP port", "SMTP 端口"),
    "smtp_security": ("SMTP security: none, starttls or ssl",
                      "SMTP 加密方式：none、starttls 或 ssl"),
    "smtp_user": ("SMTP login (the password comes from XLCRM_SMTP_PASSWORD, never the workbook)",
                  "SMTP 登录名（密码从环境变量 XLCRM_SMTP_PASSWORD 读取，不写在工作簿里）"),
    "smtp_from": ("Sender address of notification e-mails", "通知邮件的发件人地址"),
    "pool_enabled": ("Lead pool (公海) on: customers nobody follows lose their owner by the "
                     "rules of the Pool table (yes/no)",
                     "开启公海：按“公海规则”表，长期无人跟进的客户回到公海（是/否）"),
    "pool_exempt_open_deals": ("A customer with an open deal never goes to the pool (yes/no)",
                               "有进行中商机的客户不进入公海（是/否）"),
    "pool_exempt_won": ("A customer who has bought before never goes to the pool (yes/no)",
                        "已成交过的客户不进入公海（是/否）"),
    "pool_open_deals": ("A customer's open deals when it goes to the pool: keep (their owner "
                        "stays) or release (their owner is cleared too)",
                        "客户进入公海时其进行中的商机：keep（保留负责人）或 release"
                        "（一并清空负责人）"),
    "pool_claims_per_day": ("Customers one person may claim from the pool a day (0 = no limit)",
                            "每人每天可从公海领取的客户数（0 = 不限）"),
    "pool_max_owned": ("Customers one person may own at most; a claim past it is refused "
                       "(0 = no cap)", "每人最多拥有的客户数，超过则不能领取（0 = 不限）"),
    "pool_cooldown_days": ("Days before a customer's former owner may claim it back",
                           "原负责人在客户进入公海后多少天内不能再领取"),
    "pool_protect_days": ("Days after a claim during which the customer cannot go back to "
                          "the pool", "领取后的保护期天数（期内不会回到公海）"),
    "edit_policy": ("Edits to another owner's records: warn (an edit-by-non-owner warning, "
                    "and the owner is told) or off",
                    "修改他人负责的记录：warn（给出 edit-by-non-owner 警告并通知负责人）或 off"),
    "mirror_url": ("Database that sync mirrors the workbook into after every write: a SQLite "
                   "file path, 'sqlite' for the file beside the workbook, or postgresql://…; "
                   "blank = none (the password comes from PGPASSWORD, never the workbook)",
                   "每次同步写入后镜像到的数据库：SQLite 文件路径、sqlite（工作簿旁的文件）或 "
                   "postgresql://…；留空则不镜像"
                   "（密码从环境变量 PGPASSWORD 读取，不写在工作簿里）"),
}


class Settings(BaseModel):
    stages: list[Stage]
    people: list[Person] = Field(default_factory=list)
    lists: dict[str, list[str]] = Field(default_factory=dict)
    options: Options = Field(default_factory=Options)
    custom_fields: list[CustomField] = Field(default_factory=list)
    service_rules: list[ServiceRule] = Field(default_factory=list)
    notify_rules: list[NotifyRule] = Field(default_factory=list)
    pool_rules: list[PoolRule] = Field(default_factory=lambda: list(DEFAULT_POOL_RULES))
    export_stages: list[ExportStage] = Field(default_factory=list)

    def person(self, value: object) -> Person | None:
        """The person a name or an e-mail address names (case and width folded)."""
        wanted = normalize_value(value)
        if not wanted:
            return None
        for person in self.people:
            if wanted in (normalize_value(person.name), normalize_value(person.email or "")):
                return person
        return None

    def pool_rule(self, tier: object) -> PoolRule | None:
        """The Pool row for a customer's tier (else the row without a tier)."""
        wanted = normalize_value(tier)
        general = None
        for rule in self.pool_rules:
            if rule.tier is None or not rule.tier.strip():
                general = general or rule
            elif normalize_value(rule.tier) == wanted:
                return rule
        return general

    def stage(self, value: object) -> Stage | None:
        """The stage named by a cell value, if any (case and width folded)."""
        wanted = normalize_value(value)
        for stage in self.stages:
            if normalize_value(stage.name) == wanted:
                return stage
        return None

    def choices(self, key: str) -> list[str]:
        if key == "stage":
            return [s.name for s in sorted(self.stages, key=lambda s: s.order)]
        return self.lists.get(key, [])

    def tiers(self) -> list[tuple[str, float]]:
        """(tier, minimum lifetime value), highest minimum first; a part whose minimum is not
        a number is left out."""
        out = []
        for name, minimum in _pairs(self.options.tier_thresholds):
            value = parse_number(minimum or 0)
            if name and value is not None:
                out.append((name, value))
        return sorted(out, key=lambda t: -t[1])

    def rates(self) -> dict[str, float]:
        """Currency code (upper case) -> rate to the default currency, which is 1."""
        out = {self.options.default_currency.strip().upper(): 1.0}
        for code, rate in _pairs(self.options.exchange_rates):
            value = parse_number(rate)
            if code and value is not None and value > 0:
                out.setdefault(code.upper(), value)
        return out

    @property
    def day_first(self) -> bool:
        """Whether dd/mm/yyyy is read day first (Settings date_order, else the language)."""
        return dayfirst(self.options.date_order, self.options.language or "en")

    def closed_stages(self) -> list[str]:
        """The names of the won and lost stages."""
        return [s.name for s in self.stages if s.kind != "open"]

    def active_people(self) -> set[str]:
        return {normalize_value(p.name) for p in self.people if p.active}


def _pairs(text: str) -> list[tuple[str, str]]:
    """"A:1; B:2" (either colon, any list separator) as [("A", "1"), ("B", "2")]."""
    out = []
    for part in split_choices(text):
        name, _, value = part.replace("：", ":").partition(":")
        out.append((name.strip(), value.strip()))
    return out


def parse_bool(value: Any, default: bool) -> bool:
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    text = normalize_value(value)
    if text in schema.TRUE_WORDS:
        return True
    if text in schema.FALSE_WORDS:
        return False
    raise ValueError(f"not yes/no: {value!r}")


def default_settings(lang: Lang = "en") -> Settings:
    """The settings every new template starts with."""
    index = 0 if lang == "en" else 1
    stages = [Stage.model_validate({"name": names[index], "probability": p, "order": i + 1,
                                    "kind": kind, "max_days": days})
              for i, (*names, p, kind, days) in enumerate(schema.DEFAULT_STAGES)]
    people = [Person.model_validate({"name": n, "email": e, "role": r})
              for n, e, r in _DEFAULT_PEOPLE[lang]]
    lists = {key: list(spec[2 + index]) for key, spec in schema.LISTS.items()}
    rules = [NotifyRule.model_validate({"event": event, "recipients": who[index],
                                        "channels": how[index], "threshold": threshold})
             for event, who, how, threshold in schema.DEFAULT_NOTIFY_RULES]
    export = [ExportStage(stage=names[index], **dict(zip(
        ("hubspot", "salesforce", "zoho", "odoo"), schema.DEFAULT_EXPORT_STAGES[names[0]],
        strict=True))) for *names, _, _, _ in schema.DEFAULT_STAGES]
    return Settings(stages=stages, people=people, lists=lists, options=Options(language=lang),
                    notify_rules=rules, export_stages=export)


_DEFAULT_PEOPLE: dict[Lang, tuple[tuple[str, str, str], ...]] = {
    "en": (("Alice Chen", "alice@example.com", "sales"), ("Bob Li", "bob@example.com", "sales"),
           ("Carol Wang", "carol@example.com", "service"),
           ("David Zhou", "david@example.com", "manager")),
    "zh": (("张伟", "zhangwei@example.com", "sales"), ("王芳", "wangfang@example.com", "sales"),
           ("李娜", "lina@example.com", "service"), ("刘洋", "liuyang@example.com", "manager")),
}


def settings_from_tables(tables: Mapping[str, list[dict[str, Any]] | None], lang: Lang) -> Settings:
    """Build Settings from the rows of the Settings tables (column keys → cell values).

    A table that is absent (None) takes the defaults; a table that is present but empty
    means "none" (an empty People table means nobody is checked as an owner).

    Raises:
        SettingsInvalid: a row holds a value that cannot be used.
    """
    defaults = default_settings(lang)
    try:
        stages = _rows("Stages", tables.get("Stages"), Stage, defaults.stages)
        people = _rows("People", tables.get("People"), Person, defaults.people)
        custom = _rows("CustomFields", tables.get("CustomFields"), CustomField,
                       defaults.custom_fields)
        rules = _rows("ServiceRules", tables.get("ServiceRules"), ServiceRule,
                      defaults.service_rules)
        notify = _rows("Notifications", tables.get("Notifications"), NotifyRule,
                       defaults.notify_rules)
        pool = _rows("Pool", tables.get("Pool"), PoolRule, defaults.pool_rules)
        export = _rows("ExportStages", tables.get("ExportStages"), ExportStage,
                       defaults.export_stages)
        lists = defaults.lists
        if tables.get("Lists") is not None:
            lists = {key: [] for key in schema.LISTS}
            for row in tables["Lists"] or []:
                for key, value in row.items():
                    if key in lists and not _blank(value):
                        lists[key].append(_text(value))
        options = defaults.options
        if tables.get("Options") is not None:
            raw = {_text(r.get("key")): _text(r.get("value")) for r in tables["Options"] or []
                   if not _blank(r.get("key"))}
            known = {k: v for k, v in raw.items() if k in Options.model_fields and v != ""}
            extra = {k: v for k, v in raw.items() if k not in Options.model_fields}
            options = Options.model_validate({"language": lang, **known, "extra": extra})
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise SettingsInvalid(f"Settings: {where}: {first['msg']}") from None
    except ValueError as error:
        raise SettingsInvalid(f"Settings: {error}") from None
    if not stages:
        raise SettingsInvalid("Settings: the Stages table has no stage")
    settings = Settings(stages=stages, people=people, lists=lists, options=options,
                        custom_fields=custom, service_rules=rules, notify_rules=notify,
                        pool_rules=pool, export_stages=export)
    try:
        settings.tiers()
    except ValueError:
        raise SettingsInvalid(f"Settings: tier_thresholds: cannot read "
                              f"{options.tier_thresholds!r} (e.g. A:500000; B:100000; C:0)"
                              ) from None
    return settings


def _rows(table: str, rows: Iterable[dict[str, Any]] | None, model: Any,
          default: list[Any]) -> list[Any]:
    if rows is None:
        return list(default)
    out: list[Any] = []
    for row in rows:
        values = {k: (_text(v) if isinstance(v, str) else v) for k, v in row.items()
                  if not _blank(v)}
        if model is PoolRule and not values or model is not PoolRule and all(
                values.get(k) is None for k in ("name", "column", "field", "event", "stage")):
            continue  # a blank row inside a table
        if model is Stage and "order" not in values:
            values["order"] = len(out) + 1
        try:
            out.append(model(**values))
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise SettingsInvalid(f"Settings → {table}, row {len(out) + 1}: {where}: "
                                  f"{first['msg']}") from None
    return out


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip() if value is not None else ""
