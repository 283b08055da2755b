"""What we declare is what CI tests: every runtime dependency's lower bound is pinned in
.ci/lowest.txt (installed in a second venv by .ci/run), and no extra downgrades the runtime."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _project() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def test_every_lower_bound_is_tested_in_ci() -> None:
    declared = {}
    for requirement in _project()["dependencies"]:  # type: ignore[attr-defined]
        name, spec = re.match(r"([A-Za-z0-9_.\-]+)(.*)", requirement).groups()  # type: ignore[union-attr]
        low = re.search(r"(?:>=|==)\s*([\w.]+)", spec)
        assert low, f"{name} has no lower bound: CI could not test its lowest version"
        declared[name.lower()] = low.group(1)
    pinned = {}
    for line in (ROOT / ".ci" / "lowest.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, version = line.split("==")
            pinned[name.strip().lower()] = version.strip()
    assert set(pinned) == set(declared)
    for name, version in declared.items():
        assert tuple(int(p) for p in re.findall(r"\d+", pinned[name])[:3]) >= tuple(
            int(p) for p in re.findall(r"\d+", version)[:3]), name
        assert pinned[name].startswith(version) or version.startswith(pinned[name]), name


def test_no_extra_pins_pandas_below_the_runtime() -> None:
    extras = _project().get("optional-dependencies", {})
    for requirements in extras.values():  # type: ignore[attr-defined]
        assert not any(r.startswith("recordlinkage") for r in requirements)
