"""The docs cannot drift: the CLI reference is generated, every command and code is documented."""

from __future__ import annotations

import os
import runpy
from pathlib import Path

import pytest

from xlcrm.issues import Code

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(bool(os.environ.get("XLCRM_LOWEST_DEPS")),
                    reason="help is rendered differently by older typer/click; the reference "
                           "is generated with the newest")
def test_cli_reference_is_fresh() -> None:
    module = runpy.run_path(str(ROOT / "docs" / "make_cli_md.py"))
    current = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert current == module["render"](), "run: python docs/make_cli_md.py"


def test_every_command_is_in_the_readme() -> None:
    module = runpy.run_path(str(ROOT / "docs" / "make_cli_md.py"))
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for command in module["commands"]():
        assert f"xlcrm {command}" in readme, command


def test_every_issue_code_is_documented() -> None:
    text = (ROOT / "docs" / "issue-codes.md").read_text(encoding="utf-8")
    for code in Code:
        assert f"`{code}`" in text, code


def test_readme_has_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert 'python -m pip install -e ".[test]" && xlcrm demo' in readme
    assert 'python -m pip install -e ".[test]" && python -m pytest' in readme
