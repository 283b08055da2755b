"""Writes docs/cli.md from the commands' own --help, so the reference cannot drift.

Run: python docs/make_cli_md.py   (tests/test_docs.py fails when the file is stale)
"""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from xlcrm.cli import app

OUT = Path(__file__).with_name("cli.md")


def commands() -> list[str]:
    """Every command, with the subcommands of groups ("addin build")."""
    import typer.main

    group = typer.main.get_command(app)
    out = []
    for name, command in sorted(group.commands.items()):  # type: ignore[attr-defined]
        out.append(name)
        for sub in sorted(getattr(command, "commands", {})):
            out.append(f"{name} {sub}")
    return out


def render() -> str:
    runner = CliRunner()
    parts = ["# Command reference\n",
             "Generated from `--help` by `python docs/make_cli_md.py`; do not edit by hand.\n"]
    for args in [[], *[c.split() for c in commands()]]:
        result = runner.invoke(app, [*args, "--help"], env={"COLUMNS": "100", "NO_COLOR": "1"},
                               prog_name="xlcrm")
        title = " ".join(["xlcrm", *args])
        parts.append(f"## `{title}`\n\n```text\n{result.stdout.rstrip()}\n```\n")
    return "\n".join(parts)


if __name__ == "__main__":
    OUT.write_text(render(), encoding="utf-8")
    print(OUT)
