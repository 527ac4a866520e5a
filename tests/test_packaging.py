"""One distribution whose top-level folders import as tracelake.*; agent code needs no server parts."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_folders_import_as_namespaced_packages():
    import tracelake.archiver
    import tracelake.collector
    import tracelake.sdk
    import tracelake.store
    import tracelake.ui

    for module, folder in [(tracelake.sdk, "sdk"), (tracelake.collector, "collector"), (tracelake.ui, "ui"),
                           (tracelake.archiver, "archiver"), (tracelake.store, "tracelake/store")]:
        assert Path(module.__file__).resolve().parent == ROOT / folder


def test_agent_code_imports_no_server_dependency():
    code = ("import sys, tracelake; tracelake.autotrace; import tracelake.sdk; "
            "heavy = {'chdb', 'fastapi', 'grpc', 'clickhouse_connect', 'pyarrow', 'boto3', 'uvicorn'} & set(sys.modules); "
            "assert not heavy, heavy")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
