"""Scores: judgements on a trace or one of its spans, set by people (the trace page, review
mode), by the app (its users' thumbs) or by code (evaluators). docs/scores.md.

What arrives over HTTP is checked here (:func:`check_score`): a name writable as ``score.<name>``,
a value of the right type for the project's config of that name (``thumbs``: up/down, built in),
a comment of bounded size. Score spans sent over OTLP are turned into rows by the store's insert
(:mod:`tracelake.store.scores_schema`), with the same rules where SQL can apply them.

Reads go through the caller's store: under auth it is scoped, so a caller reads and scores only
traces of its projects (the ``scores`` table is filtered by ``Project`` like every trace table).
"""
from __future__ import annotations

import math
import re
import secrets
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Union

from tracelake.query.params import Params, query
from tracelake.store.base import Store
from tracelake.store.scores_schema import DATA_TYPES, NAME_PATTERN, SOURCES

NAME_RE = re.compile(NAME_PATTERN)
TRACE_RE = re.compile(r"^[0-9a-f]{32}$")
SPAN_RE = re.compile(r"^([0-9a-f]{16})?$")
MAX_COMMENT = 5000
MAX_CATEGORY = 200
MAX_AUTHOR = 200
MAX_CATEGORIES = 20
THUMBS = "thumbs"
Value = Union[float, bool, str]


class ScoreError(ValueError):
    """A score or config refused before anything was written; ``field`` names what is wrong."""

    def __init__(self, message: str, field: str = "", status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.status = status

    def to_dict(self) -> dict[str, Any]:
        return {"error": self.message, "field": self.field or None}


@dataclass(frozen=True)
class ScoreConfig:
    """How a score name is set on a project's traces: its type and its range or categories."""

    name: str
    data_type: str  # numeric | boolean | categorical
    min_value: float = 0.0
    max_value: float = 0.0
    categories: tuple[str, ...] = ()
    description: str = ""
    project: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "categories": list(self.categories)}

    @property
    def keys(self) -> list[tuple[str, str]]:
        """(label, value) of each choice the review page offers, in order (one key each)."""
        if self.data_type == "numeric":
            lo, hi = int(self.min_value), int(self.max_value)
            return [(str(v), str(v)) for v in range(lo, hi + 1)] if 0 < hi - lo + 1 <= 10 else []
        if self.data_type == "boolean":
            return [("true", "true"), ("false", "false")]
        return [(c, c) for c in self.categories]


BUILT_IN: dict[str, ScoreConfig] = {THUMBS: ScoreConfig(THUMBS, "categorical", categories=("down", "up"),
                                                        description="thumbs up or down (built in)")}


@dataclass
class Score:
    score_id: str
    project: str
    trace_id: str
    span_id: str
    name: str
    value: float
    string_value: str
    data_type: str
    comment: str
    source: str
    author: str
    author_version: str
    created_at: datetime

    @property
    def shown(self) -> str:
        """The value as people read it: the category, true/false, or the number."""
        if self.string_value:
            return self.string_value
        return f"{self.value:g}"

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["value"] = None if math.isnan(self.value) else self.value
        out["created_at"] = self.created_at.isoformat()
        out["shown"] = self.shown
        return out


@dataclass
class TraceScores:
    """A trace's scores: every one (newest first) and the current one per (target, name)."""

    all: list[Score] = field(default_factory=list)

    def latest(self) -> list[Score]:
        seen: set[tuple[str, str]] = set()
        out = []
        for s in self.all:  # newest first
            if (s.span_id, s.name) not in seen:
                seen.add((s.span_id, s.name))
                out.append(s)
        return out

    def of(self, span_id: str) -> list[Score]:
        """Current scores of one target ('' = the trace)."""
        return [s for s in self.latest() if s.span_id == span_id]


# --- checks -----------------------------------------------------------------------------------------
def check_name(name: Any) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ScoreError("a score name is 1-64 letters, digits, '_', '.' or '-' (it is written score.<name> in "
                         "filters)", "name")
    return name


def check_ids(trace_id: Any, span_id: Any) -> tuple[str, str]:
    tid = str(trace_id or "").lower()
    sid = str(span_id or "").lower()
    if not TRACE_RE.match(tid):
        raise ScoreError("trace_id is 32 hexadecimal characters", "trace_id")
    if not SPAN_RE.match(sid):
        raise ScoreError("span_id is 16 hexadecimal characters, or empty for the whole trace", "span_id")
    return tid, sid


def _bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


def typed_value(value: Any, config: ScoreConfig | None) -> tuple[float, str, str]:
    """(Value, StringValue, DataType) of ``value`` under ``config`` (None: the value's own type)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ScoreError("a score needs a value", "value")
    kind = config.data_type if config else None
    if kind == "boolean" or (kind is None and _bool(value) is not None):
        flag = _bool(value)
        if flag is None:
            raise ScoreError(f"{config.name if config else 'this score'} is true or false", "value")
        return (1.0 if flag else 0.0), ("true" if flag else "false"), "boolean"
    if kind == "numeric" or (kind is None and isinstance(value, (int, float))):
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ScoreError(f"{config.name if config else 'this score'} is a number", "value") from None
        if not math.isfinite(number):
            raise ScoreError("a score's number must be finite", "value")
        if config and not config.min_value <= number <= config.max_value:
            raise ScoreError(f"{config.name} is between {config.min_value:g} and {config.max_value:g}", "value")
        return number, "", "numeric"
    text = str(value).strip().lower()
    if len(text) > MAX_CATEGORY:
        raise ScoreError(f"a category is at most {MAX_CATEGORY} characters", "value")
    if config and text not in config.categories:
        raise ScoreError(f"{config.name} is one of {', '.join(config.categories)}", "value")
    try:  # a number sent as text (a form field) is a number
        number = float(text)
        if math.isfinite(number) and kind is None:
            return number, "", "numeric"
    except ValueError:
        pass
    number = {"up": 1.0, "down": 0.0}.get(text, math.nan)  # thumbs average to the share of thumbs up
    if config and number != number and config.categories:
        number = float(config.categories.index(text))
    return number, text, "categorical"


def check_text(value: Any, what: str, limit: int) -> str:
    text = "" if value is None else str(value)
    if len(text) > limit:
        raise ScoreError(f"{what} is at most {limit} characters", what)
    return text


# --- writes -----------------------------------------------------------------------------------------
def trace_projects(store: Store, trace_id: str) -> list[str]:
    """Projects holding spans of the trace (hot or archived) that ``store`` lets its caller see."""
    p = Params()
    t = p.s(trace_id)
    rows = query(store, f"SELECT DISTINCT toString(Project) AS P FROM trace_summary WHERE TraceId = {t} "
                        f"UNION DISTINCT SELECT DISTINCT toString(Project) AS P FROM trace_summary_archive "
                        f"WHERE TraceId = {t}", p)
    return sorted({r["P"] for r in rows})


def add_score(store: Store, trace_id: str, name: str, value: Any, *, span_id: str = "", comment: str = "",
              source: str = "human", author: str = "", author_version: str = "") -> list[Score]:
    """Score a trace (or one of its spans) that ``store``'s caller can read: one row per project
    holding it (a shared trace id is a trace per project). Raises :class:`ScoreError` (404 for a
    trace the caller cannot see)."""
    tid, sid = check_ids(trace_id, span_id)
    name = check_name(name)
    if source not in SOURCES:
        raise ScoreError(f"source is one of {', '.join(SOURCES)}", "source")
    comment = check_text(comment, "comment", MAX_COMMENT)
    author = check_text(author, "author", MAX_AUTHOR)
    author_version = check_text(author_version, "author_version", 100)
    projects = trace_projects(store, tid)
    if not projects:
        raise ScoreError("trace not found", "trace_id", 404)
    now = datetime.now(timezone.utc)
    out = []
    for project in projects:
        number, text, kind = typed_value(value, config_of(store, project, name))
        score = Score(secrets.token_hex(8), project, tid, sid, name, number, text, kind, comment, source, author,
                      author_version, now)
        p = Params()
        values = ", ".join([p.s(project), p.s(tid), p.s(sid), p.s(name), p.f(number), p.s(text), p.s(kind),
                            p.s(comment), p.s(source), p.s(author), p.s(author_version), p.s(score.score_id),
                            f"fromUnixTimestamp64Micro({p.i(int(now.timestamp() * 1_000_000))})"])
        store.execute("INSERT INTO scores (Project, TraceId, SpanId, Name, Value, StringValue, DataType, Comment, "
                      f"Source, Author, AuthorVersion, ScoreId, CreatedAt) VALUES ({values})", p.bound(store))
        out.append(score)
    return out


def delete_score(store: Store, trace_id: str, score_id: str, *, actor: str, any_author: bool) -> Score:
    """Delete one score: its author may, and ``any_author`` callers (ops, admins). Raises ScoreError
    (404 unknown, 403 someone else's)."""
    tid, _ = check_ids(trace_id, "")
    if not re.fullmatch(r"[0-9a-f]{16}", score_id or ""):
        raise ScoreError("score not found", "score_id", 404)
    found = [s for s in trace_scores(store, tid).all if s.score_id == score_id]
    if not found:
        raise ScoreError("score not found", "score_id", 404)
    score = found[0]
    if not any_author and score.author != actor:
        raise ScoreError("only its author or ops may delete a score", "score_id", 403)
    p = Params()
    store.execute(f"DELETE FROM scores WHERE Project = {p.s(score.project)} AND TraceId = {p.s(tid)} "
                  f"AND ScoreId = {p.s(score_id)}", p.bound(store))
    return score


# --- reads ------------------------------------------------------------------------------------------
_COLS = ("ScoreId, toString(Project) AS Project, TraceId, SpanId, toString(Name) AS Name, Value, StringValue, "
         "toString(DataType) AS DataType, Comment, toString(Source) AS Source, Author, AuthorVersion, CreatedAt")


def _score(r: dict[str, Any]) -> Score:
    return Score(r["ScoreId"], r["Project"], r["TraceId"], r["SpanId"], r["Name"], float(r["Value"]), r["StringValue"],
                 r["DataType"], r["Comment"], r["Source"], r["Author"], r["AuthorVersion"], r["CreatedAt"])


def trace_scores(store: Store, trace_id: str) -> TraceScores:
    """Every score of the trace the caller can read, newest first (a retried export counted once)."""
    p = Params()
    rows = query(store, f"SELECT {_COLS} FROM scores WHERE TraceId = {p.s(trace_id)} "
                        "ORDER BY CreatedAt DESC, ScoreId DESC LIMIT 1 BY ScoreId LIMIT 5000", p)
    return TraceScores([_score(r) for r in rows])


def latest_by_trace(store: Store, trace_ids: list[str]) -> dict[str, dict[str, str]]:
    """For the trace list's column: per trace, each score name's current value (the newest over
    the trace and its spans), as shown."""
    if not trace_ids:
        return {}
    p = Params()
    ids = ", ".join(p.s(t) for t in trace_ids)
    rows = query(store, "SELECT TraceId, toString(Name) AS N, argMax(if(StringValue != '', StringValue, toString(Value)), "
                        f"CreatedAt) AS V FROM scores WHERE TraceId IN ({ids}) GROUP BY TraceId, N "
                        "ORDER BY N", p)
    out: dict[str, dict[str, str]] = {}
    for r in rows:
        out.setdefault(r["TraceId"], {})[r["N"]] = r["V"]
    return out


def scores_for_export(store: Store, trace_ids: list[str]) -> dict[str, list[Score]]:
    """Every score of these traces, newest first, by trace (the JSONL export)."""
    if not trace_ids:
        return {}
    p = Params()
    ids = ", ".join(p.s(t) for t in trace_ids)
    rows = query(store, f"SELECT {_COLS} FROM scores WHERE TraceId IN ({ids}) "
                        "ORDER BY CreatedAt DESC, ScoreId DESC LIMIT 1 BY ScoreId", p)
    out: dict[str, list[Score]] = {}
    for r in rows:
        out.setdefault(r["TraceId"], []).append(_score(r))
    return out


FEW_SCORES = 20_000


def few_scores(store: Store, names: set[str]) -> bool:
    """Whether a filter requiring scores of ``names`` can match few traces: then the trace list
    reads its whole range in one pass (the primary key finds the scored traces) instead of
    growing time windows that each come back nearly empty."""
    if not names:
        return False
    p = Params()
    rows = query(store, f"SELECT count() AS n FROM scores WHERE Name IN ({', '.join(p.s(n) for n in sorted(names))})", p)
    return int(rows[0]["n"]) <= FEW_SCORES


# --- configs ----------------------------------------------------------------------------------------
_CONFIG_LOCK = threading.Lock()
_last_version = 0


def _version() -> int:
    global _last_version
    with _CONFIG_LOCK:
        _last_version = max(_last_version + 1, time.time_ns() // 1000)
        return _last_version


def check_config(body: dict[str, Any]) -> ScoreConfig:
    name = check_name(body.get("name"))
    if name == THUMBS:
        raise ScoreError("thumbs is built in (down/up)", "name")
    kind = str(body.get("data_type") or "")
    if kind not in DATA_TYPES:
        raise ScoreError(f"data_type is one of {', '.join(DATA_TYPES)}", "data_type")
    lo = hi = 0.0
    cats: tuple[str, ...] = ()
    if kind == "numeric":
        try:
            lo, hi = float(body.get("min_value", 0)), float(body.get("max_value", 0))
        except (TypeError, ValueError):
            raise ScoreError("min_value and max_value are numbers", "min_value") from None
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise ScoreError("min_value must be below max_value", "max_value")
    if kind == "categorical":
        raw = body.get("categories") or []
        if isinstance(raw, str):
            raw = raw.split(",")
        cats = tuple(dict.fromkeys(str(c).strip().lower() for c in raw if str(c).strip()))
        if not 1 < len(cats) <= MAX_CATEGORIES or any(len(c) > 60 or "," in c for c in cats):
            raise ScoreError(f"categories: 2 to {MAX_CATEGORIES} names of at most 60 characters", "categories")
    return ScoreConfig(name, kind, lo, hi, cats, check_text(body.get("description"), "description", 500))


def set_config(store: Store, project: str, config: ScoreConfig, actor: str, active: bool = True) -> None:
    p = Params()
    values = ", ".join([p.s(project), p.s(config.name), p.s(config.data_type), p.f(config.min_value),
                        p.f(config.max_value), f"arrayFilter(x -> x != '', splitByChar(',', {p.s(','.join(config.categories))}))", p.s(config.description),
                        p.i(1 if active else 0), p.s(actor), p.i(_version())])
    store.execute("INSERT INTO score_configs (Project, Name, DataType, MinValue, MaxValue, Categories, Description, "
                  f"Active, Actor, Version) VALUES ({values})", p.bound(store))


def configs(store: Store, project: str | None = None) -> list[ScoreConfig]:
    """Active configs (of ``project``, or every project the store shows), thumbs first."""
    p = Params()
    where = f"WHERE Project = {p.s(project)}" if project is not None else ""
    rows = query(store, "SELECT toString(Project) AS P, Name, argMax(DataType, Version) AS T, argMax(MinValue, Version) AS L, "
                        "argMax(MaxValue, Version) AS H, argMax(Categories, Version) AS C, "
                        "argMax(Description, Version) AS D, argMax(Active, Version) AS A "
                        f"FROM score_configs {where} GROUP BY P, Name ORDER BY P, Name", p)
    found = [ScoreConfig(r["Name"], r["T"], r["L"], r["H"], tuple(r["C"]), r["D"], r["P"]) for r in rows if r["A"]]
    return [BUILT_IN[THUMBS], *found]


def config_of(store: Store, project: str, name: str) -> ScoreConfig | None:
    if name in BUILT_IN:
        return BUILT_IN[name]
    return next((c for c in configs(store, project) if c.name == name and c.project == project), None)
