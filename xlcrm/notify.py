"""Change notifications: rules from Settings → Notifications, batched per run, delivered by an
incoming webhook (JSON POST) and by e-mail (SMTP).

`events` turns one run's changes (and its stalled warnings) into events; `queue` puts one
webhook message and one e-mail per recipient into the history's outbox; `deliver` sends what
is waiting. Delivery never raises: a failure is logged, kept in the outbox and retried on the
next run (up to `MAX_ATTEMPTS` times). HTTP and SMTP use the standard library (urllib,
smtplib): both are small, well-kept and need nothing installed.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import smtplib
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlparse

import pandas as pd

from . import messages, schema
from . import normalize as nz
from .changes import CONTACT_FIELDS, Tracker, show
from .history import History, now_utc
from .issues import Code, Report
from .reader import WorkbookData
from .schema import Lang, normalize_value
from .settings import NotifyRule, Options, Settings

log = logging.getLogger("xlcrm.notify")
MAX_ATTEMPTS = 10
TIMEOUT = 5.0
MAX_LINES = 50  # events listed per message; the rest are counted

TEXTS: dict[str, tuple[str, str]] = {
    "contact-changed": ("Customer {name} ({id}): {field} changed from “{old}” to “{new}”",
                        "客户 {name}（{id}）的{field}由“{old}”改为“{new}”"),
    "deal-won": ("Deal won: {title} ({id}), {amount}, owner {owner}",
                 "赢单：{title}（{id}），金额 {amount}，负责人 {owner}"),
    "deal-lost": ("Deal lost: {title} ({id}), {amount}, reason: {reason}",
                  "输单：{title}（{id}），金额 {amount}，原因：{reason}"),
    "big-deal": ("New large deal: {title} ({id}), {amount}, owner {owner}",
                 "新的大额商机：{title}（{id}），金额 {amount}，负责人 {owner}"),
    "deal-stalled": ("Deal stalled: {title} ({id}) in {stage} for {days} days, owner {owner}",
                     "商机停滞：{title}（{id}）在“{stage}”阶段已 {days} 天，负责人 {owner}"),
    "pool-warning": ("Customer {name} ({id}) goes back to the lead pool on {due} ({reason}) "
                     "unless followed up, owner {owner}",
                     "客户 {name}（{id}）将于 {due} 回到公海（{reason}），除非及时跟进，客户经理 "
                     "{owner}"),
    "pool-recycled": ("Customer {name} ({id}) went back to the lead pool ({reason}), former "
                      "owner {owner}", "客户 {name}（{id}）已回到公海（{reason}），原客户经理 "
                      "{owner}"),
    "edit-by-non-owner": ("{message} ({id})", "{message}（{id}）"),
    "subject": ("[xlcrm] {workbook}: {count} update(s)", "[xlcrm] {workbook}：{count} 条提醒"),
    "more": ("… and {count} more", "……另有 {count} 条"),
}


@dataclass
class Event:
    kind: str
    record_id: str
    text: str
    recipients: list[str]  # e-mail addresses
    names: list[str]  # the people meant, for the webhook text
    channels: list[str]
    key: str | None = None  # set for events sent once only (stalled)


@dataclass
class Delivery:
    """What a run's delivery did."""

    sent: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


def _text(kind: str, lang: Lang, **values: Any) -> str:
    return TEXTS[kind][0 if lang == "en" else 1].format(**values)


def events(tracker: Tracker, report: Report, settings: Settings,
           today: dt.date | None = None, pool: Any = None) -> list[Event]:
    """The events of one run, for the rules in Settings. The first run of a workbook (the
    baseline) raises no change events; stalled deals are told once per stay in a stage, a
    customer about to go back to the lead pool once per due date (`pool`: the run's
    `xlcrm.pool.Recycling`)."""
    data, lang = tracker.data, tracker.data.lang
    today = today or dt.date.today()
    rules: dict[str, list[NotifyRule]] = {}
    for rule in settings.notify_rules:
        rules.setdefault(rule.event, []).append(rule)
    if not rules:
        return []
    people = _People(settings)
    stalled = [i for i in report.issues if i.code == Code.STALLED and i.record_id
               ] if "deal-stalled" in rules else []
    changes = [] if tracker.baseline else tracker.user_changes
    opps = _by_id(data, "opportunities", {c.record_id for c in changes
                                          if c.sheet == "opportunities"}
                  | {str(i.record_id) for i in stalled})
    customers = _by_id(data, "customers", {c.record_id for c in changes
                                           if c.sheet == "customers"}
                       | {nz.text(r.get("customer_id")) for r in opps.values()})
    found: list[Event] = []

    def add(kind: str, rid: str, text: str, record: dict[str, Any], customer: dict[str, Any],
            key: str | None = None, amount: float | None = None) -> None:
        for rule in rules.get(kind, []):
            if rule.threshold is not None and (amount is None or amount < rule.threshold):
                continue
            emails, names = people.resolve(rule.recipients, record, customer)
            found.append(Event(kind, rid, text, emails, names, list(rule.channels), key))

    if changes:
        for change in changes:
            if change.sheet == "customers" and change.action == "changed" and (
                    change.field in CONTACT_FIELDS["customers"]):
                record = customers.get(change.record_id, {})
                text = _text("contact-changed", lang, name=nz.text(record.get("name")),
                             id=change.record_id,
                             field=schema.field_label("customers", change.field, lang),
                             old=show(change.old), new=show(change.new))
                add("contact-changed", change.record_id, text, record, record)
            elif change.sheet == "opportunities":
                if change.record_id not in opps:
                    continue
                record = opps[change.record_id]
                customer = customers.get(nz.text(record.get("customer_id")), {})
                amount = nz.parse_number(record.get("amount"))
                money = _money(amount, record, settings.options)
                stage = settings.stage(record.get("stage"))
                if (change.action == "changed" and change.field == "stage" or
                        change.action == "added") and stage is not None and stage.kind != "open":
                    kind = "deal-won" if stage.kind == "won" else "deal-lost"
                    text = _text(kind, lang, title=nz.text(record.get("title")),
                                 id=change.record_id, amount=money,
                                 owner=nz.text(record.get("owner")),
                                 reason=nz.text(record.get("lost_reason")))
                    add(kind, change.record_id, text, record, customer)
                if change.action == "added":
                    text = _text("big-deal", lang, title=nz.text(record.get("title")),
                                 id=change.record_id, amount=money,
                                 owner=nz.text(record.get("owner")))
                    add("big-deal", change.record_id, text, record, customer, amount=amount)
    for issue in stalled:
        record = opps.get(str(issue.record_id), {})
        parse = nz.date_parser(settings.day_first)
        since = parse(record.get("stage_changed_at")) or parse(record.get("created_at"))
        key = f"stalled|{issue.record_id}|{nz.text(record.get('stage'))}|{since}"
        days = (today - since).days if since else ""
        text = _text("deal-stalled", lang, title=nz.text(record.get("title")),
                     id=issue.record_id, stage=nz.text(record.get("stage")), days=days,
                     owner=nz.text(record.get("owner")))
        customer = customers.get(nz.text(record.get("customer_id")), {})
        add("deal-stalled", str(issue.record_id), text, record, customer, key=key)
    for issue in report.issues:
        if issue.code == Code.EDIT_BY_NON_OWNER and issue.record_id:
            text = _text("edit-by-non-owner", lang, message=issue.message, id=issue.record_id)
            owner = {"owner": issue.value}
            add("edit-by-non-owner", issue.record_id, text, owner, {})
    if pool is not None:
        for kind, items in (("pool-warning", pool.warned), ("pool-recycled", pool.recycled)):
            for item in items:
                values = {"owner": item.owner}
                text = _text(kind, lang, name=item.name, id=item.customer_id,
                             due=item.due.isoformat(), owner=item.owner,
                             reason=messages.t(f"pool_reason_{item.reason}", lang,
                                               days=item.days))
                add(kind, item.customer_id, text, values, {},
                    key=f"{kind}|{item.customer_id}|{item.due.isoformat()}")
    return found


def queue(history: History, found: Sequence[Event], data: WorkbookData,
          at: dt.datetime | None = None) -> int:
    """Batch the events into messages in the outbox: one webhook message for the run, one
    e-mail per recipient. Events already told (stalled) are dropped. Returns messages queued."""
    at = at or now_utc()
    keys = [e.key for e in found if e.key]
    told = history.already_notified(keys)
    fresh = [e for e in found if not (e.key and e.key in told)]
    if not fresh:
        return 0
    lang, options = data.lang, data.settings.options
    messages: list[tuple[str, str, str | None, str]] = []
    hook = webhook_url(options)
    to_hook = [e for e in fresh if "webhook" in e.channels]
    if hook and to_hook:
        lines = [f"{e.text}" + (f" → {', '.join(e.names)}" if e.names else "") for e in to_hook]
        title = _text("subject", lang, workbook=data.path.name, count=len(to_hook))
        body = json.dumps(webhook_payload(hook, options.webhook_format, title,
                                          _cap(lines, lang), to_hook), ensure_ascii=False)
        messages.append(("webhook", hook, title, body))
    if smtp_settings(options)["host"]:
        by_address: dict[str, list[str]] = {}
        for event in fresh:
            if "email" in event.channels:
                for address in event.recipients:
                    lines = by_address.setdefault(address, [])
                    if event.text not in lines:
                        lines.append(event.text)
        for address, lines in sorted(by_address.items()):
            subject = _text("subject", lang, workbook=data.path.name, count=len(lines))
            messages.append(("email", address, subject, "\n".join(_cap(lines, lang))))
    history.enqueue(messages, at)
    history.mark_notified(keys, at)
    return len(messages)


def deliver(history: History, options: Options) -> Delivery:
    """Send every message waiting in the outbox. Never raises."""
    result = Delivery()
    for message_id, channel, target, subject, body in history.pending(MAX_ATTEMPTS):
        try:
            if channel == "webhook":
                post_webhook(target, body)
            else:
                send_email(options, target, subject or "xlcrm", body)
        except Exception as error:  # a notification must never fail the run
            text = f"{channel} to {target}: {type(error).__name__}: {error}"
            log.warning("notification not delivered (will retry): %s", text)
            history.failed(message_id, text)
            result.failed += 1
            result.errors.append(text)
        else:
            history.delivered(message_id, now_utc())
            result.sent += 1
    return result


# ---------------------------------------------------------------------------------------------
# Channels

def webhook_url(options: Options) -> str:
    return os.environ.get("XLCRM_WEBHOOK_URL") or options.webhook_url.strip()


def webhook_kind(url: str, configured: str = "auto") -> str:
    if configured != "auto":
        return configured
    host = (urlparse(url).hostname or "").lower()
    if host.endswith("hooks.slack.com"):
        return "slack"
    if host.endswith("qyapi.weixin.qq.com"):
        return "wecom"
    if host.endswith("oapi.dingtalk.com"):
        return "dingtalk"
    if host.endswith(("webhook.office.com", "logic.azure.com")):
        return "teams"
    return "json"


def webhook_payload(url: str, configured: str, title: str, lines: Sequence[str],
                    found: Sequence[Event]) -> dict[str, Any]:
    """The JSON body each kind of incoming webhook expects: Slack and Teams take ``text``,
    WeCom and DingTalk ``msgtype``/``text.content``; plain JSON carries the events too."""
    text = "\n".join([title, *lines])
    kind = webhook_kind(url, configured)
    if kind in ("wecom", "dingtalk"):
        return {"msgtype": "text", "text": {"content": text}}
    if kind in ("slack", "teams"):
        return {"text": text}
    return {"text": text, "source": "xlcrm",
            "events": [{"kind": e.kind, "record_id": e.record_id, "text": e.text,
                        "recipients": e.names} for e in found]}


def post_webhook(url: str, body: str) -> None:
    request = urllib.request.Request(url, data=body.encode("utf-8"), method="POST",
                                     headers={"Content-Type": "application/json; charset=utf-8"})
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:  # noqa: S310
        reply = response.read(65536)
    try:  # WeCom and DingTalk answer 200 with an error code in the body
        answer = json.loads(reply or b"{}")
    except ValueError:
        return
    if isinstance(answer, dict) and answer.get("errcode") not in (None, 0):
        raise RuntimeError(f"webhook answered errcode {answer.get('errcode')}: "
                           f"{answer.get('errmsg')}")


def smtp_settings(options: Options) -> dict[str, Any]:
    env = os.environ.get
    return {"host": env("XLCRM_SMTP_HOST") or options.smtp_host.strip(),
            "port": int(env("XLCRM_SMTP_PORT") or options.smtp_port),
            "security": env("XLCRM_SMTP_SECURITY") or options.smtp_security,
            "user": env("XLCRM_SMTP_USER") or options.smtp_user.strip(),
            "password": env("XLCRM_SMTP_PASSWORD") or "",
            "sender": env("XLCRM_SMTP_FROM") or options.smtp_from.strip() or "xlcrm@localhost"}


def send_email(options: Options, to: str, subject: str, body: str) -> None:
    conf = smtp_settings(options)
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = conf["sender"], to, subject
    message.set_content(body)
    if conf["security"] == "ssl":
        client: smtplib.SMTP = smtplib.SMTP_SSL(conf["host"], conf["port"], timeout=TIMEOUT,
                                                context=ssl.create_default_context())
    else:
        client = smtplib.SMTP(conf["host"], conf["port"], timeout=TIMEOUT)
    with client:
        if conf["security"] == "starttls":
            client.starttls(context=ssl.create_default_context())
        if conf["user"] and conf["password"]:
            client.login(conf["user"], conf["password"])
        client.send_message(message)


# ---------------------------------------------------------------------------------------------
# Helpers

class _People:
    """Resolves recipient words (owner, service_owner, managers, names, addresses) to e-mail
    addresses through Settings → People."""

    def __init__(self, settings: Settings) -> None:
        self.email = {normalize_value(p.name): p.email for p in settings.people if p.email}
        self.managers = [p for p in settings.people if p.role == "manager" and p.active]

    def resolve(self, words: Iterable[str], record: dict[str, Any],
                customer: dict[str, Any]) -> tuple[list[str], list[str]]:
        names: list[str] = []
        for word in words:
            if word == "owner":
                names.append(nz.text(record.get("owner")))
            elif word == "service_owner":
                names.append(nz.text(customer.get("service_owner")))
            elif word == "managers":
                names.extend(p.name for p in self.managers)
            else:
                names.append(word)
        emails: list[str] = []
        shown: list[str] = []
        for name in names:
            if not name:
                continue
            address = name if "@" in name else self.email.get(normalize_value(name))
            if address and address not in emails:
                emails.append(address)
                shown.append(name)
            elif not address:
                log.info("no e-mail address for %s in Settings → People", name)
        return emails, shown


def _by_id(data: WorkbookData, key: str, wanted: set[str]) -> dict[str, dict[str, Any]]:
    """The records of a sheet whose IDs are in `wanted`, by ID."""
    sdef = schema.SHEETS_BY_KEY[key]
    assert sdef.id_field
    records: dict[str, dict[str, Any]] = {}
    if not wanted:
        return records
    frame = data.sheets[key].frame
    ids = frame[sdef.id_field].map(nz.text)
    for record in frame[ids.isin(wanted)].to_dict("records"):
        rid = nz.text(record.get(sdef.id_field))
        if rid and rid not in records:
            records[rid] = record
    return records


def _money(amount: float | None, record: dict[str, Any], options: Options) -> str:
    if amount is None or pd.isna(amount):
        return "—"
    currency = nz.text(record.get("currency")) or options.default_currency
    return f"{amount:,.0f} {currency}"


def _cap(lines: list[str], lang: Lang) -> list[str]:
    if len(lines) <= MAX_LINES:
        return lines
    return [*lines[:MAX_LINES], _text("more", lang, count=len(lines) - MAX_LINES)]
