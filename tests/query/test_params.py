"""query(): parameters reach ClickHouse intact, also from many threads on one embedded store."""
from __future__ import annotations

import threading

import pytest

from tracelake.query.params import Params, query


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from tracelake.store import open_store

    s = open_store(data_dir=tmp_path_factory.mktemp("params-store"))
    yield s
    s.close()


def test_awkward_strings_round_trip(store):
    for value in ["a\\b", "tab\there", "line\nbreak", "quote ' and \"", "nul\0byte", "{p0:String}", "ünïcode"]:
        p = Params()
        assert query(store, f"SELECT {p.s(value)} AS v", p) == [{"v": value}]


def test_threads_get_their_own_values(store):
    """chdb keeps parameters per connection: without the store's lock on its session, threads get each other's."""
    wrong: list[tuple[str, object]] = []
    errors: list[BaseException] = []

    def work(tag: str) -> None:
        try:
            for i in range(150):
                p = Params()
                value = f"{tag}-{i}"
                got = query(store, f"SELECT {p.s(value)} AS v, {p.i(i)} AS n FROM numbers(200) LIMIT 1", p)
                if got != [{"v": value, "n": i}]:
                    wrong.append((value, got))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in "abcd"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and wrong == []
