"""Progress: a terminal sees the steps of a long job; a pipe sees nothing extra."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from xlcrm import cli as cli_module
from xlcrm import jobs, progress
from xlcrm.messages import t


def test_a_sync_reports_its_steps_in_order(clean_book: Callable[..., Path]) -> None:
    path = clean_book()
    seen: list[tuple[str, dict[str, Any]]] = []
    with progress.listening(lambda key, params: seen.append((key, params))):
        jobs.sync_workbook(path)
    keys = [key for key, _ in seen]
    assert keys[0] == "read" and seen[0][1] == {"name": path.name}
    for key in ("changes", "promote", "validate", "dedupe", "analyse", "write"):
        assert key in keys
    assert keys.index("validate") < keys.index("analyse") < keys.index("write")
    for key, params in seen:  # every step has its words, in both languages
        assert t(f"step_{key}", "en", **params) and t(f"step_{key}", "zh", **params)


def test_piped_output_has_no_spinner(clean_book: Callable[..., Path],
                                     cli: Callable[..., Any]) -> None:
    result = cli("validate", clean_book())
    assert "…" not in result.output and "\x1b" not in result.output


@pytest.mark.parametrize(("lang", "words"), [("en", "writing crm_en.xlsx"),
                                             ("zh", "正在写入 crm_zh.xlsx")])
def test_a_terminal_sees_the_steps_in_the_workbooks_language(
        clean_book: Callable[..., Path], cli: Callable[..., Any],
        monkeypatch: pytest.MonkeyPatch, lang: str, words: str) -> None:
    screen = io.StringIO()
    monkeypatch.setattr(cli_module, "err", Console(file=screen, force_terminal=True, width=100))
    result = cli("sync", clean_book(lang))
    assert result.exit_code in (0, 1)
    assert words in screen.getvalue()  # the last step, shown when the spinner stops
