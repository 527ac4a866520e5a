"""Erasure/restore test data: a user whose content carries unique markers, in both tiers and in
attachment blobs, beside other users' traces on the same days (so Delta files must be rewritten,
not dropped), plus what an outside reader finds afterwards (no tracelake code involved)."""
from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from att_media import png
from arx_helpers import DAY_NS, POLICY, send
from otlp_spans import GENAI_CHAT, new_trace_id, request, span
from server_process import start_server

HERE = Path(__file__).resolve().parent
CONTENT_MARK = "ZQXCONTENTMARK7731"   # in the victim's prompts, answers, events
USER_MARK = "victim-ZQXUSERMARK4412"  # the victim's user id
VICTIM_IMAGE = png(40, 30, 7701)      # referenced only by the victim's traces
SHARED_IMAGE = png(40, 30, 7702)      # referenced by the victim and another user
VICTIM_ARCHIVED_IMAGE = png(40, 30, 7703)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class World:
    requests: list[bytes] = field(default_factory=list)
    victim_hot: set[str] = field(default_factory=set)
    victim_archived: set[str] = field(default_factory=set)
    others_hot: set[str] = field(default_factory=set)
    others_archived: set[str] = field(default_factory=set)
    spans: dict[str, int] = field(default_factory=dict)

    @property
    def victim(self) -> set[str]:
        return self.victim_hot | self.victim_archived


def _image_msg(image: bytes, text: str) -> str:
    uri = "data:image/png;base64," + base64.b64encode(image).decode()
    return json.dumps([{"role": "user", "parts": [{"type": "text", "content": text},
                                                  {"type": "uri", "uri": uri, "modality": "image"}]}])


def _trace(start_ns: int, user: str, text: str, image: bytes | None, session: str) -> list[dict[str, Any]]:
    tid = new_trace_id()
    root = span("agent run", tid, start_ns=start_ns, duration_ns=5_000_000,
                attrs={"input.value": text, "user.id": user, "session.id": session})
    chat_attrs = dict(GENAI_CHAT)
    if image is not None:
        chat_attrs["gen_ai.input.messages"] = _image_msg(image, text)
    child = span("chat gpt-4o", tid, parent=root["span_id"], start_ns=start_ns + 1000, attrs=chat_attrs,
                 events=[("gen_ai.choice", {"index": 0, "text": f"answer about {text}"})])
    return [root, child]


def make_world(now_ns: int | None = None) -> World:
    now_ns = now_ns or time.time_ns()
    w = World()

    def add(spans: list[dict[str, Any]], bucket: set[str]) -> None:
        tid = spans[0]["trace_id"].hex()
        w.requests.append(request(spans).SerializeToString())
        bucket.add(tid)
        w.spans[tid] = len(spans)

    vtext = f"my secret {CONTENT_MARK} please"
    add(_trace(now_ns - 1 * DAY_NS, USER_MARK, vtext, VICTIM_IMAGE, "victim-s1"), w.victim_hot)
    add(_trace(now_ns - 1 * DAY_NS + 5000, USER_MARK, vtext, SHARED_IMAGE, "victim-s1"), w.victim_hot)
    add(_trace(now_ns - 10 * DAY_NS, USER_MARK, vtext, VICTIM_ARCHIVED_IMAGE, "victim-s2"), w.victim_archived)
    add(_trace(now_ns - 10 * DAY_NS + 7000, USER_MARK, vtext, None, "victim-s2"), w.victim_archived)
    for i in range(3):
        add(_trace(now_ns - 1 * DAY_NS + i, f"other-{i}", f"ordinary question {i}",
                   SHARED_IMAGE if i == 0 else None, f"s-other-{i}"), w.others_hot)
        add(_trace(now_ns - 10 * DAY_NS + 3000 + i, f"other-{i}", f"old question {i}", None, f"s-old-{i}"),
            w.others_archived)
    return w


def seed_world(data_dir: Path, w: World, policy: Path, **server_flags: Any) -> None:
    """Send through a real server, wait for spans and blobs, archive the 10-day-old traces."""
    with start_server(data_dir, retention=str(policy), archive_every="1d", **server_flags) as server:
        send(server, w.requests)
        server.wait_for_count("SELECT count() FROM otel_traces", sum(w.spans.values()))
        server.wait_for_count("SELECT uniqExact(Sha256) FROM attachments", 3)
        out = subprocess.run([sys.executable, "-m", "tracelake.cli", "archiver", "run", "--url", server.ui_url, "--json"],
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr
        archived = sum(w.spans[t] for t in w.victim_archived | w.others_archived)
        server.wait_for_count("SELECT count() FROM otel_traces_archive", archived)


def seeded_template(root: Path) -> dict[str, Any]:
    """A seeded store under ``root``/template (copy it per test) with its world, retention file and
    ``tiers`` snapshot: root, w, template, before. Its tables drop replaced parts within a second
    (ers_tool.py quick-cleanup), so an erasure waiting for them does not wait ClickHouse's cycle."""
    w = make_world()
    policy = root / "retention.yaml"
    policy.write_text(POLICY)
    template = root / "template"
    seed_world(template, w, policy)
    tool("quick-cleanup", template)
    return {"root": root, "w": w, "template": template, "before": tool("tiers", template)}


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    full = {**os.environ, "COLUMNS": "200", "TRACELAKE_ERASE_SPOOL_WAIT_S": "0", **(env or {})}
    return subprocess.run([sys.executable, "-m", "tracelake.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=full)


def tool(command: str, data_dir: Path, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    out = subprocess.run([sys.executable, str(HERE / "ers_tool.py"), command, str(data_dir), *args],
                         capture_output=True, text=True, timeout=600, env={**os.environ, **(env or {})})
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout)


# --- outside readers ---------------------------------------------------------------------------
def files_holding(root: Path, needles: list[bytes]) -> list[str]:
    """Every file under root whose raw bytes contain a needle."""
    hits = []
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = Path(dirpath) / name
            try:
                data = path.read_bytes()
            except OSError:
                continue
            if any(n in data for n in needles):
                hits.append(str(path))
    return hits


def parquet_values_holding(files: dict[str, bytes], needles: list[str]) -> list[str]:
    """Decode every Parquet file (whether the Delta log refers to it or not) with pyarrow and look
    at every value: compressed pages hide strings from a byte search."""
    import io

    import pyarrow.parquet as pq

    hits = []
    for name, data in files.items():
        if not name.endswith(".parquet"):
            continue
        text = json.dumps(pq.read_table(io.BytesIO(data)).to_pylist(), default=str)
        if any(n in text for n in needles):
            hits.append(name)
    return hits
