"""Notifications go to a real HTTP server and a real SMTP server on 127.0.0.1."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from tests.conftest import (
    TODAY,
    Inbox,
    append_rows,
    edit_cells,
    free_port,
    set_options,
    user_edit,
)
from xlcrm.history import History
from xlcrm.jobs import sync_workbook
from xlcrm.notify import webhook_payload
from xlcrm.reader import read_workbook


class Hook:
    """A webhook receiver: every POST body, decoded."""

    def __init__(self, port: int = 0) -> None:
        self.posts: list[dict[str, Any]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                hook.posts.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b'{"errcode": 0, "errmsg": "ok"}')

            def log_message(self, *args: Any) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook() -> Iterator[Hook]:
    server = Hook()
    yield server
    server.close()


def set_rule_channels(path: Path, event: str, channels: str) -> None:
    """Change the channel of a rule in Settings → Notifications."""

    def change(book: openpyxl.Workbook) -> None:
        ws = book["Settings"] if "Settings" in book.sheetnames else book["设置"]
        cell = next(c for row in ws.iter_rows() for c in row if c.value == event)
        ws.cell(row=cell.row, column=cell.column + 2).value = channels

    user_edit(path, change)


def test_contact_change_emails_the_owner_and_the_service_owner(
        clean_book: Callable[..., Path], inbox: tuple[Inbox, int]) -> None:
    mail, port = inbox
    path = clean_book()
    set_options(path, smtp_host="127.0.0.1", smtp_port=port, smtp_from="crm@example.com")
    edit_cells(path, [("customers", "C-000002", "owner", "Alice Chen"),
                      ("customers", "C-000002", "service_owner", "Carol Wang")])
    sync_workbook(path, today=TODAY)  # the baseline: no change mails
    assert not [m for m in mail.messages if "C-000002" in str(m.get_payload())]

    edit_cells(path, [("customers", "C-000002", "phone", "+86 139 0000 1111")])
    result = sync_workbook(path, today=TODAY)
    assert result.delivery is not None and result.delivery.failed == 0
    for address in ("alice@example.com", "carol@example.com"):
        bodies = [b for b in mail.to(address) if "C-000002" in b]
        assert len(bodies) == 1, address
        assert "+86 139 0000 1111" in bodies[0]
    assert all(m["From"] == "crm@example.com" for m in mail.messages)
    # Bob owns nothing here and hears nothing about it
    assert not [b for b in mail.to("bob@example.com") if "C-000002" in b]


def test_won_deal_and_big_deal_reach_the_webhook_in_one_post(
        clean_book: Callable[..., Path], hook: Hook) -> None:
    path = clean_book(lang="zh")
    set_options(path, webhook_url=hook.url, webhook_format="wecom")
    sync_workbook(path, today=TODAY)
    baseline_posts = len(hook.posts)

    frame = read_workbook(path).sheets["opportunities"].frame
    open_deal = str(frame[frame["stage"].isin(["线索", "需求确认", "方案"])]
                    ["opportunity_id"].iloc[0])
    edit_cells(path, [("opportunities", open_deal, "stage", "赢单")])
    data = read_workbook(path)
    sheet = data.sheets["opportunities"]
    user_edit(path, append_rows(sheet.name, sheet.table, sheet.columns, [
        {"title": "全厂自动化改造", "customer_id": "C-000001", "stage": "线索",
         "amount": 2_500_000, "owner": "张伟", "created_at": TODAY}]))
    sync_workbook(path, today=TODAY)

    assert len(hook.posts) == baseline_posts + 1  # batched: one post for the run
    post = hook.posts[-1]
    assert post["msgtype"] == "text"  # the WeCom / DingTalk shape
    content = post["text"]["content"]
    assert "赢单：" in content and open_deal in content
    assert "新的大额商机：全厂自动化改造" in content and "2,500,000" in content


def test_a_stalled_deal_is_told_once(clean_book: Callable[..., Path], hook: Hook) -> None:
    path = clean_book(sample=20)
    set_options(path, webhook_url=hook.url)
    set_rule_channels(path, "deal-stalled", "webhook")
    first = sync_workbook(path, today=TODAY)
    stalled = [i.record_id for i in first.report.issues if i.code == "stalled"]
    assert stalled, "the sample has stalled deals"
    told = "\n".join(p["text"] for p in hook.posts)
    assert all(f"({oid})" in told for oid in stalled)
    assert {e["kind"] for p in hook.posts for e in p["events"]} == {"deal-stalled"}
    posts = len(hook.posts)
    sync_workbook(path, today=TODAY)
    assert len(hook.posts) == posts


def test_a_failed_delivery_never_fails_the_sync_and_is_retried(
        clean_book: Callable[..., Path]) -> None:
    port = free_port()  # nothing listens here yet
    path = clean_book(sample=20)
    set_options(path, webhook_url=f"http://127.0.0.1:{port}/hook")
    set_rule_channels(path, "deal-stalled", "webhook")
    first = sync_workbook(path, today=TODAY)
    assert first.written
    assert first.delivery is not None and first.delivery.failed == 1
    with History(path) as history:
        waiting = history.outbox()
    assert len(waiting) == 1 and waiting[0]["sent_at"] is None
    assert "127.0.0.1" in waiting[0]["last_error"]

    server = Hook(port)
    try:
        second = sync_workbook(path, today=TODAY)
        assert second.delivery is not None and second.delivery.sent == 1
        assert len(server.posts) == 1
        assert "stalled" in json.dumps(server.posts[0])
    finally:
        server.close()
    with History(path) as history:
        assert history.outbox()[0]["sent_at"] is not None


@pytest.mark.parametrize(("url", "shape"), [
    ("https://hooks.slack.com/services/T/B/X", {"text"}),
    ("https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k", {"msgtype", "text"}),
    ("https://oapi.dingtalk.com/robot/send?access_token=t", {"msgtype", "text"}),
    ("https://example.webhook.office.com/webhookb2/x", {"text"}),
    ("https://example.org/anything", {"text", "source", "events"}),
])
def test_webhook_payload_shape_follows_the_service(url: str, shape: set[str]) -> None:
    payload = webhook_payload(url, "auto", "title", ["line"], [])
    assert set(payload) == shape
    text = payload["text"]["content"] if isinstance(payload["text"], dict) else payload["text"]
    assert text == "title\nline"
