"""Free text finds exactly what a plain reading of the spans finds, in both tiers (issue 23).

One corpus (Unicode, JSON-escaped messages, a very long prompt, identifiers, text outside the
searchable keys) is stored twice: recent (hot tier, text index) and four days old, moved to the
Delta archive by a real archiver run (term index). Every query form is answered by the trace list's
API and compared with a reference written here in Python from the documented meaning (words split
on ASCII punctuation, case-insensitive; ``w*`` a prefix; quotes a sequence); the archive's no-match
searches are checked to open no file.
"""
from __future__ import annotations

import json
import re
import time

import pytest

import otlp_spans as o
import ui_traces

DAY = 86400 * 10**9
SEP = re.compile(r"[\x00-\x2f\x3a-\x40\x5b-\x60\x7b-\x7f]+")
LONG = " ".join(f"filler{i}" for i in range(20_000)) + " needleword at the very end"

# (span name, attributes, status message, events) per trace of the corpus.
CORPUS = [
    ("chat gpt-4o", {"gen_ai.input.messages": json.dumps([{"role": "user", "content": "Where is my Refund?\n\nOrder 4417 please"}]),
                     "gen_ai.output.messages": json.dumps([{"role": "assistant", "content": "Refunds take 5 days"}])}, "", []),
    ("chat gpt-4o", {"gen_ai.input.messages": json.dumps([{"role": "user", "content": "Ich möchte eine Rückerstattung für café in 東京"}],
                                                         ensure_ascii=False)}, "", []),
    ("tool lookup_order", {"gen_ai.tool.name": "lookup_order", "gen_ai.tool.call.arguments": '{"order_id": 4417, "note": "<b>urgent</b>"}',
                           "gen_ai.tool.call.result": '{"status": "shipped"}'}, "", []),
    ("llm", {"llm.input_messages.0.message.content": LONG, "input.value": "refunding policy"}, "", []),
    ("step", {"traceloop.entity.input": "order-4418 cancelled", "http.url": "https://x/refund/secret"}, "", []),
    ("failing call", {}, "Timeout talking to billing", [("exception", {"exception.message": "RefundError: order 4417 not found",
                                                                       "exception.type": "RefundError"})]),
    ("chat", {"gen_ai.prompt.0.content": "GPT-4O-2024-08-06 said hello"}, "", []),
]

QUERIES = ["refund", "Refund", "refunds", "refund*", "refu*", "4417", '"order 4417"', "order_4417", '"4417 please"',
           "café", "東京", "rückerstattung", "needleword", '"very end"', "lookup_order", "urgent", "shipped",
           "billing", "refunderror", "gpt-4o-2024-08-06", "secret", "zzqqxx", '"refund order"', "refund -shipped",
           "order* 4417", "please", "ncontext", "\"4417 order\"", "4417 order"]


def _searchable(name: str, attrs: dict, status: str, events: list) -> str:
    """The documented searchable text, written independently of the SQL."""
    keys = re.compile(r"^(gen_ai\.(input\.messages|output\.messages|system_instructions|tool\.name|tool\.call\.arguments|tool\.call\.result"
                      r"|prompt.*|completion.*)|llm\.(input_messages\..*|output_messages\..*|prompts.*)|input\.value|output\.value"
                      r"|tool\.name|tool\.parameters|retrieval\.documents\..*|traceloop\.entity\.(input|output)|exception\..*)$")
    parts = [name, status] + [v for k, v in attrs.items() if keys.match(k)] + [v for _, ev in events for v in ev.values()]
    text = " ".join(parts).replace("\\n", " ").replace("\\r", " ").replace("\\t", " ")
    return text.lower()


def _words(text: str) -> list[str]:
    return [w for w in SEP.split(text.lower()) if w]


def _term_matches(term: str, text: str) -> bool:
    ws = _words(text)
    if term.startswith('"'):
        need, prefix = _words(term.strip('"')), False
    elif term.endswith("*"):
        need, prefix = _words(term[:-1]), True
    else:
        need, prefix = _words(term), False
    for i in range(len(ws) - len(need) + 1):
        head_ok = ws[i:i + len(need) - 1] == need[:-1]
        last = ws[i + len(need) - 1]
        if head_ok and (last.startswith(need[-1]) if prefix else last == need[-1]):
            return True
    return False


def _expected(query: str) -> set[int]:
    out = set()
    for i, (name, attrs, status, events) in enumerate(CORPUS):
        text = _searchable(name, attrs, status, events)
        terms = re.findall(r'-?"[^"]*"|\S+', query)
        if all((not _term_matches(t[1:], text)) if t.startswith("-") else _term_matches(t, text) for t in terms):
            out.add(i)
    return out


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from fastapi.testclient import TestClient

    from tracelake.archiver.delta import ArchiveLocation
    from tracelake.archiver.policy import parse_policy
    from tracelake.archiver.service import Archiver
    from tracelake.config import Settings
    from tracelake.store import open_store
    from tracelake.web import create_app

    root = tmp_path_factory.mktemp("text-search")
    store = open_store(data_dir=root / "data")
    now = time.time_ns()
    ids: dict[tuple[str, int], str] = {}
    requests = []
    for tier, base in (("hot", now - 60 * 10**9), ("archive", now - 4 * DAY)):
        for i, (name, attrs, status, events) in enumerate(CORPUS):
            tid = o.new_trace_id()
            ids[(tier, i)] = tid.hex()
            requests.append(o.request([o.span(name, tid, start_ns=base + i * 10**9, attrs=attrs, status=2 if status else 0,
                                              status_message=status, events=events)]).SerializeToString())
    ui_traces.insert(store, requests)
    policy = parse_policy("rules:\n  - name: default\n    hot: 1d\n    archive: forever\n")
    archiver = Archiver(store, policy, ArchiveLocation.for_url((root / "objects").as_uri()))
    app = create_app(store, Settings())
    app.state.archiver = archiver
    with TestClient(app) as client:
        archiver.run_once()
        yield client, store, ids, root
    archiver.release()
    store.close()


def _found(client, query: str) -> dict[str, set[str]]:
    r = client.get("/api/traces", params={"q": query, "range": "7d", "limit": 100})
    assert r.status_code == 200, r.text
    out: dict[str, set[str]] = {"hot": set(), "archive": set()}
    for row in r.json()["traces"]:
        out[row["tier"]].add(row["trace_id"])
    return out


@pytest.mark.parametrize("query", QUERIES)
def test_each_form_finds_what_a_reading_of_the_spans_finds_in_both_tiers(corpus, query):
    client, _, ids, _ = corpus
    want = _expected(query)
    got = _found(client, query)
    for tier in ("hot", "archive"):
        assert got[tier] == {ids[(tier, i)] for i in want}, (tier, query, sorted(want))


def test_the_reference_is_not_trivial():
    # The corpus tells the forms apart: a word is not its prefix, a phrase is not its words.
    assert _expected("refund") != _expected("refund*")
    assert _expected('"4417 order"') != _expected("4417 order")
    assert _expected("zzqqxx") == set() and _expected("4417")


def test_the_hot_index_answers_without_reading_rows(corpus):
    _, store, _, _ = corpus
    from tracelake.query.compile import HOT
    from tracelake.query.filters import parse
    from tracelake.query.params import Params
    from tracelake.query.text_search import term_sql

    p = Params()
    cond = term_sql(p, parse("needleword"), HOT.text)
    plan = "\n".join(store.query_arrow(f"EXPLAIN indexes = 1 SELECT count() FROM otel_traces WHERE {cond}",
                                       p.bound(store)).column(0).to_pylist())
    assert "idx_search_text" in plan, plan


def test_an_archive_search_matching_nothing_opens_no_file(corpus):
    client, store, ids, root = corpus
    from tracelake.ui.queries import archive_files

    indexed = store.query_arrow("SELECT count() AS n FROM archive_term_files").column("n")[0].as_py()
    assert indexed >= 1
    before = dict(archive_files.OPENED)
    for q in ("zzqqxx", '"refund zzqqxx"', "nosuchword*", "refund zzqqxx"):
        assert _found(client, q)["archive"] == set()
    assert archive_files.OPENED == before
    # A matching search does read (the counter counts).
    assert _found(client, "needleword")["archive"] == {ids[("archive", 3)]}
    assert archive_files.OPENED["files"] > before["files"]


def test_an_unindexed_file_is_still_searched(corpus):
    """An archive written before the index (here: its entries dropped) is read, then `reindex`'s
    indexing makes it skippable again."""
    client, store, ids, root = corpus
    from tracelake.archiver import text_index
    from tracelake.archiver.delta import ArchiveLocation
    from tracelake.ui.queries import archive_files

    store.execute("TRUNCATE TABLE archive_terms")
    store.execute("TRUNCATE TABLE archive_term_files")
    before = dict(archive_files.OPENED)
    assert _found(client, "shipped")["archive"] == {ids[("archive", 2)]}
    assert _found(client, "zzqqxx")["archive"] == set()
    assert archive_files.OPENED != before  # unindexed: read
    location = ArchiveLocation.for_url((root / "objects").as_uri())
    assert text_index.index_pending(store, location, text_index.live_files(location)) >= 1
    before = dict(archive_files.OPENED)
    assert _found(client, "zzqqxx")["archive"] == set()
    assert archive_files.OPENED == before
