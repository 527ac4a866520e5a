"""Every refusal of the archiver is a RetentionError carrying its status and a safe message, and
the one handler installed with the archiver's routes answers each (issue 22): no endpoint picks
a status by itself."""
from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tracelake.archiver import errors
from tracelake.archiver.erase import EraseError
from tracelake.archiver.explain import TraceNotFound
from tracelake.archiver.keep import HoldFilterError, HoldForbidden, HoldNameTaken, KeepError
from tracelake.archiver.policy import PolicyError
from tracelake.archiver.restore import RestoreError
from tracelake.archiver.rules import FileIsSource
from tracelake.query.filters import FilterError

CASES = [
    (KeepError("the reason is 9000 characters, at most 2000"), 400, {"field": "reason"}),
    (HoldForbidden("a key of project 'A' makes holds for that project only"), 403, {"field": "project"}),
    (HoldNameTaken("a hold named 'x' already exists or existed"), 409, {"field": "name"}),
    (HoldFilterError(FilterError("missing value after user:", 4)), 400, {"field": "filter", "pos": 4, "end": 5}),
    (TraceNotFound("no trace ab in the hot tier or the archive"), 404, {}),
    (EraseError("nothing matched 'user:x'", 404, {"matched": 0}), 404, {"matched": 0}),
    (RestoreError("an archive run was left unfinished", 409), 409, {}),
    (PolicyError("YAML line 3, rules[0] (default).hot: bad duration"), 400,
     {"valid": False, "line": 3, "field": "rules[0] (default).hot"}),
    (FileIsSource("/etc/retention.yaml"), 409, {"reason": "file", "path": "/etc/retention.yaml"}),
    (errors.Busy(), 409, {}),
    (errors.NoPolicy(), 409, {}),
    (errors.Unavailable("object store not reachable"), 503, {}),
]


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    from tracelake.archiver.api import install
    from tracelake.config import Settings

    app = FastAPI()
    app.state.settings = Settings(data_dir=tmp_path_factory.mktemp("errors"))
    install(app)  # the archiver's routes and its one error handler

    @app.get("/raise/{i}")
    def raise_case(i: int) -> None:
        raise CASES[i][0]

    with TestClient(app) as c:
        yield c


@pytest.mark.parametrize("i", range(len(CASES)), ids=[type(c[0]).__name__ for c in CASES])
def test_each_refusal_is_answered_by_the_one_handler(client, i):
    exc, status, extra = CASES[i]
    assert isinstance(exc, errors.RetentionError)
    r = client.get(f"/raise/{i}")
    assert r.status_code == status == exc.status
    assert r.json() == {"error": str(exc), **extra}


def test_refusals_stay_what_callers_catch():
    """Code that caught ValueError, FilterError or LookupError before still does."""
    assert isinstance(KeepError("x"), ValueError) and isinstance(PolicyError("x"), ValueError)
    assert isinstance(HoldFilterError(FilterError("bad", 0)), FilterError)
    assert isinstance(TraceNotFound("x"), LookupError)
    assert str(HoldFilterError(FilterError("bad", 0))) == "filter: bad (at character 1)"
