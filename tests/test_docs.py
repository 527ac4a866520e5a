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
