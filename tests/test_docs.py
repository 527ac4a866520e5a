"""The documentation stays true to the code."""
from __future__ import annotations

import re
from pathlib import Path

from tracelake.config import Settings

ROOT = Path(__file__).resolve().parents[1]


def test_configuration_doc_lists_every_setting():
    doc = (ROOT / "docs" / "configuration.md").read_text()
    missing = [name for name in Settings.model_fields if f"TRACELAKE_{name.upper()}" not in doc]
    assert not missing, f"docs/configuration.md does not mention: {missing}"


def test_readme_test_command_is_what_ci_runs():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    blocks = re.findall(r"```sh\n(.*?)\n```", readme, re.S)
    test_command = next(b for b in blocks if "pytest" in b)
    assert test_command in ci
    assert any("tracelake server" in b for b in blocks)


def test_relative_links_resolve():
    """Every relative link in the README and docs/ points at a file that exists."""
    broken = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "deploy").glob("*.md"))]:
        text = re.sub(r"`[^`]*`", "", page.read_text())  # links shown as code are examples
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
            if "://" in target or target.startswith(("mailto:", "data:")):
                continue
            if not (page.parent / target).exists():
                broken.append(f"{page.relative_to(ROOT)} -> {target}")
    assert not broken, f"broken links: {broken}"


def test_sdk_names_are_exported_at_the_top_level():
    import tracelake
    from tracelake import sdk

    for name in sdk.__all__:
        if name != "SpanHandle":
            assert getattr(tracelake, name) is getattr(sdk, name), name


def test_ui_doc_lists_every_filter_field():
    from tracelake.query.filters import FIELDS

    doc = (ROOT / "docs" / "ui.md").read_text()
    missing = [f.name for f in FIELDS if f"| `{f.name}`" not in doc]
    assert not missing, f"docs/ui.md's field table does not list: {missing}"
