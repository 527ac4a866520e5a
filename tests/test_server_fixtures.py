"""The suite stays fast: servers are shared unless a test needs its own.

A test file may start a server (``tracelake server``/``collector``, the ClickHouse-HTTP endpoint, an
attachment stack, or a helper that runs one, e.g. a seeding helper) per test only if it is listed in
OWN_SERVERS below with the reason. Everywhere else servers come from module- or session-scoped
fixtures, which the file's tests only read from. tests/README.md says how to choose.
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent

# What starts a server process; helpers that call one of these (transitively) are added below.
STARTERS = {"start_server", "start_server_command", "start_clickhouse_endpoint", "Stack"}
SHARED_SCOPES = {"module", "package", "session"}

# Files whose tests (or function-scoped fixtures) start servers of their own, and why.
OWN_SERVERS: dict[str, str] = {
    "archiver/test_archive_s3_clickhouse.py": "S3 or ClickHouse is cut or stopped in the middle of a run",
    "archiver/test_archive_server.py": "each test starts the server with its own retention flags and schedule",
    "archiver/test_archive_soak.py": "sends 16k (soak: 1M) spans and archives them all",
    "archiver/test_erase.py": "an erasure killed midway is finished by the next server start",
    "archiver/test_erase_clickhouse.py": "an erasure and a restore rewrite the store they run on",
    "archiver/test_erase_server.py": "an erasure and restores rewrite the store they run on",
    "archiver/test_restore.py": "a restore killed midway is finished by the next server start",
    "archiver/test_rules_api.py": "stored rules at the next start, a retention file, other processes applying rules",
    "attachments/conftest.py": "start_stack: each test sets its own limits and object store (server-wide settings)",
    "attachments/test_attachments_server.py": "the server's --object-store flag itself",
    "auth/test_bootstrap.py": "a first start on an empty store prints the admin key once",
    "collector/test_collector_reliability.py": "backpressure, store outages, kill -9 and SIGTERM of the server",
    "collector/test_spool_e2e.py": "kill -9, torn and corrupt spools, a full disk, ClickHouse down",
    "test_packaging.py": "the README's and docs/security.md's quick starts: the real `tracelake server` command, "
                         "typed in an empty folder from a freshly installed environment (first start, --auth)",
}


def _calls(node: ast.AST) -> set[str]:
    return {n.func.id for n in ast.walk(node) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}


def _fixture_scope(fn: ast.AST) -> str | None:
    """The scope of a ``@pytest.fixture`` (``"function"`` if not given), else None."""
    for dec in getattr(fn, "decorator_list", []):
        target = dec.func if isinstance(dec, ast.Call) else dec
        if isinstance(target, ast.Attribute) and target.attr == "fixture":
            for kw in dec.keywords if isinstance(dec, ast.Call) else []:
                if kw.arg == "scope" and isinstance(kw.value, ast.Constant):
                    return kw.value.value
            return "function"
    return None


def _modules() -> dict[str, ast.Module]:
    return {str(p.relative_to(TESTS)): ast.parse(p.read_text(), str(p)) for p in sorted(TESTS.rglob("*.py"))}


def _is_test_code(path: str) -> bool:
    name = Path(path).name
    return name.startswith("test_") or name == "conftest.py"


def _helpers(tree: ast.Module) -> list[ast.FunctionDef | ast.ClassDef]:
    """Top-level functions and classes that are neither tests nor fixtures."""
    return [d for d in tree.body if isinstance(d, (ast.FunctionDef, ast.ClassDef)) and _fixture_scope(d) is None
            and not d.name.startswith("test_")]


def _closure(names: set[str], defs: list[ast.FunctionDef | ast.ClassDef]) -> set[str]:
    """``names`` plus every def that calls one of them, to a fixed point."""
    names = set(names)
    while more := {d.name for d in defs if d.name not in names and _calls(d) & names}:
        names |= more
    return names


def own_servers() -> dict[str, list[str]]:
    """Per test module or conftest: its tests and function-scoped fixtures that start a server
    (directly or through a helper) rather than take one from a shared fixture."""
    modules = _modules()
    shared_helpers = [d for path, tree in modules.items() if not _is_test_code(path) for d in _helpers(tree)]
    starters = _closure(STARTERS, shared_helpers)
    found: dict[str, list[str]] = {}
    for path, tree in modules.items():
        if not _is_test_code(path) or path == Path(__file__).name:
            continue
        local = _closure(starters, _helpers(tree))
        for d in tree.body:
            per_test = (isinstance(d, ast.FunctionDef) and d.name.startswith("test_")) or _fixture_scope(d) == "function"
            if per_test and _calls(d) & local:
                found.setdefault(path, []).append(d.name)
    return found


def test_servers_come_from_shared_fixtures_unless_listed():
    found = own_servers()
    unlisted = {path: names for path, names in found.items() if path not in OWN_SERVERS}
    assert not unlisted, (
        f"these start a server per test: {unlisted}. Use a shared fixture (module/session scope) that the "
        "tests only read from (tests/README.md lists them); if the tests change server-wide state (settings, "
        "kills, restarts, rewritten stores), add the file to OWN_SERVERS in tests/test_server_fixtures.py "
        "with the reason.")
    stale = sorted(set(OWN_SERVERS) - set(found))
    assert not stale, f"no longer start servers of their own; remove them from OWN_SERVERS: {stale}"


def test_the_guard_sees_a_server_started_by_a_test_and_not_one_from_a_shared_fixture(tmp_path, monkeypatch):
    """The scan itself: a test calling a helper that starts a server is found; a module fixture is not."""
    (tmp_path / "helpers.py").write_text("def seed_it(d):\n    return start_server(d)\n")
    (tmp_path / "test_new.py").write_text(
        "import pytest\n"
        "@pytest.fixture(scope='module')\ndef shared(tmp_path_factory):\n    return start_server(tmp_path_factory.mktemp('x'))\n"
        "def test_reads(shared):\n    assert shared\n"
        "def test_own(tmp_path):\n    seed_it(tmp_path)\n")
    monkeypatch.setattr(sys.modules[__name__], "TESTS", tmp_path)
    assert own_servers() == {"test_new.py": ["test_own"]}
