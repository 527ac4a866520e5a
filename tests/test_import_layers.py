"""The dependency rule holds (issue 22): import-linter's contracts in pyproject.toml
(``[tool.importlinter]``: app > ui > archiver | collector > core > sdk) pass on the code as it is,
and catch an import that breaks them, also one inside a function.

import-linter (grimp) finds a package's modules by walking its directory, but the import names
are mapped from other folders (``tracelake.ui`` is ``ui/``: ``[tool.setuptools.package-dir]``),
so the check runs on a copy of the sources laid out by import name. ``python
tests/test_import_layers.py`` runs the same check from the command line.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: import-linter brings tomli
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")


def stage(into: Path) -> Path:
    """The package's .py files laid out by import name under ``into`` (what a wheel installs)."""
    mapping = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    # Longest import names last, so that tracelake/ is copied before tracelake/ui/ goes inside it.
    for name, folder in sorted(mapping.items(), key=lambda kv: kv[0].count(".")):
        shutil.copytree(ROOT / folder, into / name.replace(".", "/"), dirs_exist_ok=True,
                        ignore=lambda d, names: [n for n in names if not (n.endswith(".py") or (Path(d) / n).is_dir())
                                                 or n in ("__pycache__", "static", "templates")])
    return into


def lint(staged: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(staged)}  # the staged copy, ahead of the editable install
    return subprocess.run([str(LINT), str(ROOT / "pyproject.toml"), "--no-cache"], cwd=staged,
                          env=env, capture_output=True, text=True, timeout=300)


def test_the_dependency_rule_holds(tmp_path):
    out = lint(stage(tmp_path))
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert "Contracts: 2 kept, 0 broken." in out.stdout


def test_a_lazy_import_against_the_rule_is_caught(tmp_path):
    """What the archiver did before issue 22: import the UI inside a function."""
    staged = stage(tmp_path)
    keep = staged / "tracelake" / "archiver" / "keep.py"
    keep.write_text(keep.read_text() + "\n\ndef _late() -> None:\n    from tracelake.ui.queries import keep\n")
    out = lint(staged)
    assert out.returncode != 0
    assert "tracelake.archiver.keep -> tracelake.ui.queries.keep" in out.stdout, out.stdout[-4000:]


def test_a_new_core_module_must_be_placed_in_a_layer(tmp_path):
    staged = stage(tmp_path)
    (staged / "tracelake" / "newcomer.py").write_text("X = 1\n")
    out = lint(staged)
    assert out.returncode != 0 and "tracelake.newcomer" in out.stdout, out.stdout[-4000:]


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        done = lint(stage(Path(tmp)))
        sys.stdout.write(done.stdout + done.stderr)
        sys.exit(done.returncode)
