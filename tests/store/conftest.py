"""Store fixtures: every store test runs on the embedded store and on a ClickHouse server.

The server is ``TRACELAKE_TEST_CLICKHOUSE_URL`` when set, else the chdb-backed ClickHouse-HTTP
endpoint of tests/chhttp.py in a subprocess.
"""
from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from server_process import fresh_store, start_clickhouse_endpoint  # noqa: E402

from tracelake.store import Store, open_store  # noqa: E402

_databases = itertools.count()


@pytest.fixture(scope="session")
def clickhouse_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    real = os.environ.get("TRACELAKE_TEST_CLICKHOUSE_URL")
    if real:
        yield real.rstrip("/")
        return
    endpoint = start_clickhouse_endpoint(tmp_path_factory.mktemp("chhttp"))
    yield endpoint.url
    endpoint.stop()


@pytest.fixture(params=["chdb", "clickhouse"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "chdb":
        s = open_store(fresh_store(tmp_path / "data"))
    else:
        url = request.getfixturevalue("clickhouse_url")
        s = open_store(clickhouse_url=f"{url}/t_{uuid.uuid4().hex[:8]}_{next(_databases)}")
    try:
        yield s
    finally:
        if request.param == "clickhouse":
            s.execute(f"DROP DATABASE IF EXISTS {s.database}")
        s.close()
