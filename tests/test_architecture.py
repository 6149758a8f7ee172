"""README's architecture section names every module of the package, and only modules that exist."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_the_module_table_matches_the_package():
    section = (ROOT / "README.md").read_text(encoding="utf-8").split("## Architecture", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"^\| `(tfcompress/[\w/]+\.py)` \|", section, flags=re.M))
    present = {path.relative_to(ROOT).as_posix() for path in (ROOT / "tfcompress").rglob("*.py")}
    assert sorted(present - named) == [], "modules the architecture section does not name"
    assert sorted(named - present) == [], "modules it names that do not exist"


def test_the_places_to_extend_exist():
    section = (ROOT / "README.md").read_text(encoding="utf-8").split("Where to add:", 1)[1].split("\n## ", 1)[0]
    for place in ("tfcompress/pipeline/stages/", "prune/criteria.py", "export/tflite.py", "quantize/configs.py"):
        assert place in section
        assert (ROOT / "tfcompress" / place.removeprefix("tfcompress/")).exists()
    source = (ROOT / "tfcompress" / "export" / "tflite.py").read_text()
    assert "def _configure(" in source and "_CONFIGS = {" in (ROOT / "tfcompress/quantize/configs.py").read_text()
