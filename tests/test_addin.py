"""The built add-in as a file: zip, content type, ribbon XML against Microsoft's schema, and the
VBA project checked with oletools' olevba (an independent reader)."""

from __future__ import annotations

import io
import random
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import olefile
import pytest
import xmlschema
from defusedxml import ElementTree
from oletools.olevba import VBA_Parser, decompress_stream

from xlcrm import addin
from xlcrm.ribbon import ACTIONS

SCHEMA = Path(__file__).with_name("data") / "customUI.xsd"
NS = {"ui": "http://schemas.microsoft.com/office/2006/01/customui"}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return addin.build(tmp_path_factory.mktemp("addin"))


def repo_source() -> str:
    return addin.source(f"{addin.MODULE}.bas").decode("ascii")


def modules(path: Path) -> dict[str, str]:
    parser = VBA_Parser(str(path))
    try:
        return {name.rsplit(".", 1)[0]: code for _, _, name, code in parser.extract_macros()}
    finally:
        parser.close()


def test_the_build_is_deterministic(built: Path, tmp_path: Path) -> None:
    again = addin.build(tmp_path)
    assert again.read_bytes() == built.read_bytes()


def test_the_zip_keeps_the_addin_content_type_and_our_ribbon(built: Path) -> None:
    with zipfile.ZipFile(built) as archive:
        assert archive.testzip() is None
        types = archive.read("[Content_Types].xml").decode("utf-8")
        assert (f'PartName="/xl/workbook.xml" ContentType="{addin.ADDIN_CONTENT_TYPE}"'
                in types)
        assert archive.read(addin.CUSTOM_UI) == addin.source("customUI.xml")
        with zipfile.ZipFile(addin.template_path()) as template:
            assert archive.namelist() == template.namelist()


def test_the_ribbon_xml_is_valid_against_microsofts_schema(built: Path) -> None:
    schema = xmlschema.XMLSchema(str(SCHEMA))
    with zipfile.ZipFile(built) as archive:
        xml = archive.read(addin.CUSTOM_UI).decode("utf-8")
    schema.validate(xml)
    broken = xml.replace('id="xlcrmSync"', 'id="xlcrmValidate"')  # a duplicate id
    assert not schema.is_valid(broken)


def test_every_button_has_an_icon_a_screentip_both_languages_and_a_python_action(
        built: Path) -> None:
    with zipfile.ZipFile(built) as archive:
        root = ElementTree.fromstring(archive.read(addin.CUSTOM_UI))
    tab = root.find(".//ui:tab", NS)
    assert tab is not None and re.search(r"[A-Za-z]", tab.get("label", "")) and re.search(
        r"[\u4e00-\u9fff]", tab.get("label", ""))
    buttons = root.findall(".//ui:button", NS)
    tags = [b.get("tag") for b in buttons]
    assert sorted(tags) == sorted(ACTIONS)  # every button has an action, every action a button
    for button in buttons:
        assert button.get("imageMso") and button.get("screentip")
        assert re.search(r"[\u4e00-\u9fff]", button.get("label", "")), button.get("id")
        assert button.get("onAction") == "RibbonMyAddin.OnAction"


def test_every_onaction_names_a_sub_that_olevba_finds(built: Path) -> None:
    with zipfile.ZipFile(built) as archive:
        root = ElementTree.fromstring(archive.read(addin.CUSTOM_UI))
    found = modules(built)
    for action in {b.get("onAction") for b in root.findall(".//ui:button", NS)}:
        module, sub = str(action).split(".")
        assert re.search(rf"^Sub {sub}\(control As IRibbonControl\)", found[module], re.M)


def test_the_module_source_in_the_addin_is_the_one_in_the_repo(built: Path) -> None:
    code = modules(built)[addin.MODULE].replace("\r\n", "\n")
    pad = addin.PAD_PREFIX.decode("ascii")
    lines = [line for line in code.rstrip("\n").split("\n") if not line.startswith(pad)]
    assert "\n".join(lines) + "\n" == repo_source().replace("\r\n", "\n")
    assert "xlcrm.ribbon.dispatch" in code


def test_every_other_vba_stream_is_byte_identical_to_the_template(built: Path) -> None:
    with zipfile.ZipFile(addin.template_path()) as archive:
        before = archive.read(addin.VBA_PART)
    with zipfile.ZipFile(built) as archive:
        after = archive.read(addin.VBA_PART)
    stream, offset = addin.module_offsets(before)[addin.MODULE]
    with olefile.OleFileIO(io.BytesIO(before)) as old, olefile.OleFileIO(io.BytesIO(after)) as new:
        names = ["/".join(s) for s in old.listdir()]
        assert names == ["/".join(s) for s in new.listdir()]
        for name in names:
            a, b = old.openstream(name).read(), new.openstream(name).read()
            if name == stream:
                assert a[:offset] == b[:offset] and a != b
            else:
                assert a == b, name
        assert old.openstream("VBA/_VBA_PROJECT").read()[2:4] == b"\xff\xff"  # no p-code use


@pytest.mark.parametrize("seed", range(5))
def test_the_compressor_round_trips_through_oletools(seed: int) -> None:
    rng = random.Random(seed)
    words = [b"Sub ", b"End Sub\r\n", b"Dim x As Long\r\n", b"RunPython ", b"'", b"\"", b"a",
             bytes([rng.randrange(32, 127)])]
    data = b"".join(rng.choice(words) for _ in range(rng.randrange(1, 3000)))
    packed = addin.compress(data)
    assert bytes(decompress_stream(bytearray(packed))) == data
    assert addin.decompress(packed) == data


def test_install_explains_there_is_no_excel_on_linux(tmp_path: Path) -> None:
    if sys.platform in ("win32", "darwin"):
        pytest.skip("there is an Excel to install into here")
    result = subprocess.run([sys.executable, "-m", "xlcrm", "addin", "install"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "no Excel on Linux" in result.stderr and "Traceback" not in result.stderr
