"""docs/architecture.md names every module of the package; CONTRIBUTING.md's places to extend exist; the layers hold."""

import importlib
import inspect
import os
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_the_module_table_matches_the_package():
    section = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8").split("## Modules", 1)[1]
    named = set(re.findall(r"^\| `(tfcompress/[\w/]+\.py)` \|", section, flags=re.M))
    present = {path.relative_to(ROOT).as_posix() for path in (ROOT / "tfcompress").rglob("*.py")}
    assert sorted(present - named) == [], "modules the architecture section does not name"
    assert sorted(named - present) == [], "modules it names that do not exist"


def test_the_places_to_extend_exist():
    section = (ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8").split("## Where to add", 1)[1].split("\n## ", 1)[0]
    for place in ("tfcompress/pipeline/stages/", "prune/criteria.py", "export/tflite.py", "quantize/configs.py"):
        assert place in section
        assert (ROOT / "tfcompress" / place.removeprefix("tfcompress/")).exists()
    source = (ROOT / "tfcompress" / "export" / "tflite.py").read_text()
    assert "def _configure(" in source and "_CONFIGS = {" in (ROOT / "tfcompress/quantize/configs.py").read_text()


def test_the_import_contracts_hold():
    """.importlinter: the layers in the package's order, and no import cycle at any depth."""
    checked = subprocess.run(["lint-imports", "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout[-3000:]
    assert "3 kept, 0 broken" in checked.stdout


def test_no_public_function_takes_more_than_nine_parameters():
    crowded = []
    for area in ("data", "distill", "export", "litert", "prune", "quantize", "pipeline", "report", "models", "demo"):
        module = importlib.import_module(f"tfcompress.{area}")
        for name in getattr(module, "__all__", ()):
            public = getattr(module, name)
            functions = [(name, public)] if inspect.isfunction(public) else []
            if inspect.isclass(public):
                methods = [(attribute, value) for attribute, value in vars(public).items() if inspect.isfunction(value)]
                functions += [(f"{name}.{attribute}", value) for attribute, value in methods
                              if attribute == "__init__" or not attribute.startswith("_")]  # fmt: skip
            for label, function in functions:
                named = [p for p in inspect.signature(function).parameters.values()
                         if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]  # fmt: skip
                if len(named) > 9:
                    crowded.append(f"tfc.{area}.{label}: {len(named)}")
    assert crowded == []


def test_every_public_package_has_an_api_page():
    import tfcompress

    pages = "\n".join(page.read_text(encoding="utf-8") for page in (ROOT / "docs" / "api").glob("*.md"))
    not_packages = ("Distiller", "__version__", "keras", "from_keras3", "recipe")  # recipe: a deprecated alias
    packages = [name for name in tfcompress.__all__ if name not in not_packages]
    assert [name for name in packages if f"::: tfcompress.{name}\n" not in pages] == []
    assert "::: tfcompress._keras3_bridge.from_keras3" in pages


def test_the_docs_site_builds_with_no_warning(tmp_path):
    """mkdocs --strict: a broken link, a missing page or a docstring that names a parameter the code lacks fails."""
    built = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)], cwd=ROOT,
                           capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})  # fmt: skip
    assert built.returncode == 0, built.stderr[-3000:]
    assert (tmp_path / "api" / "export" / "index.html").exists()
