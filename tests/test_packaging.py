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


def test_the_public_api_is_sorted_complete_and_resolves() -> None:
    import xlcrm
    from xlcrm import errors

    assert xlcrm.__all__ == sorted(xlcrm.__all__)
    assert set(xlcrm.__all__) == {n for names in xlcrm._HOMES.values() for n in names}
    for name in xlcrm.__all__:
        assert getattr(xlcrm, name) is not None, name
    raised = {name for name, value in vars(errors).items()
              if isinstance(value, type) and issubclass(value, Exception)}
    assert raised <= set(xlcrm.__all__)  # every exception is public ...
    tree = errors.__doc__ or ""
    drawn = set(re.findall(r"[├└]── (\w+)", tree)) | {"XlcrmError"}
    assert raised == drawn, raised ^ drawn  # ... and drawn in the tree
    assert issubclass(xlcrm.WorkbookOpen, xlcrm.WriteRefused)  # one channel for refusals
    assert issubclass(xlcrm.WriteDenied, xlcrm.WriteRefused)
    assert issubclass(xlcrm.UnsafeToWrite, xlcrm.WriteRefused)
