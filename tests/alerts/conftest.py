"""One embedded store per test module (chdb holds one data directory per process at a time), a
copy of the migrated template; tests keep apart by their own rule names, services and instants."""
from __future__ import annotations

import pytest

from server_process import fresh_store


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from tracelake.store import open_store

    s = open_store(fresh_store(tmp_path_factory.mktemp("alerts") / "data"))
    yield s
    s.close()


@pytest.fixture
def receiver():
    from alerts_helpers import Receiver

    r = Receiver()
    yield r
    r.stop()
