"""``tracelake archiver explain|pin|unpin TRACE_ID`` and ``tracelake archiver hold create|release|list``.

Like the other archiver commands: they talk to the running server (``--url``; the key from
``TRACELAKE_KEY`` when auth is on), or work on their own with ``--clickhouse-url`` / ``--data-dir``
(then the actor is the local user name, and ``explain`` uses ``--retention``).
"""
from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from tracelake.archiver.cli import ClickHouseOpt, DataDirOpt, JsonOpt, RetentionOpt, UrlOpt, _fail

hold_app = typer.Typer(add_completion=False, no_args_is_help=True,
                       help="Legal holds: while a hold exists, nothing its filter matches is deleted in any tier.")

TraceArg = Annotated[str, typer.Argument(help="Trace id (hex)")]


def _call(method: str, url: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    from tracelake import server_client

    return server_client.call(method, url, path, json=body,
                              hint="use --clickhouse-url or --data-dir to work on your own").json()


def _local_store(clickhouse_url: str | None, data_dir: Path | None) -> Any:
    from tracelake.store import open_store

    return open_store(data_dir.resolve() if data_dir else None, clickhouse_url)


def _local_actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # noqa: BLE001 - no user name in some containers
        return "cli"


def _audit(store: Any, action: str, target: str, detail: str = "") -> None:
    from tracelake.auth import audit

    audit.record(store, actor=_local_actor(), role="local", action=action, target=target, detail=detail)


def _print_explain(doc: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from tracelake.archiver.explain import when

    def at(value: str | None) -> str:
        from datetime import datetime

        return when(datetime.fromisoformat(value) if value else None)

    t = Table(show_header=False, title=f"retention of trace {doc['trace_id']}")
    rule = doc.get("rule")
    t.add_row("tier now", doc["tier"])
    t.add_row("rule", escape(f"{rule['name']} ({rule['match'] or 'default'}; hot {rule['hot']}, archive {rule['archive']})")
              if rule else ("none" if doc["policy"] else "no retention policy"))
    if doc["tier"] == "hot":
        t.add_row("leaves hot", at(doc["leaves_hot"]))
    else:
        t.add_row("archived", at(doc["archived_at"]))
    t.add_row("deleted", at(doc["deleted"]))
    pin = doc.get("pin")
    kept = []
    if pin:
        kept.append(f"pin until {pin['until'] or 'unpinned'} by {pin['actor']}" + (f" ({pin['reason']})" if pin["reason"] else ""))
    kept += [f"hold {h}" for h in doc["holds"]]
    t.add_row("kept by", escape("; ".join(kept) or "nothing"))
    for note in doc["notes"]:
        t.add_row("", escape(note))
    Console().print(t)


def explain(trace_id: TraceArg, retention: RetentionOpt = None, url: UrlOpt = "http://127.0.0.1:4380",
            clickhouse_url: ClickHouseOpt = None, data_dir: DataDirOpt = None, json_output: JsonOpt = False) -> None:
    """Which rule matches a trace, when it leaves hot and is deleted, and what keeps it (pin, holds)."""
    if clickhouse_url or data_dir:
        from tracelake.archiver.explain import TraceNotFound
        from tracelake.archiver.explain import explain as do_explain
        from tracelake.archiver.keep import KeepError
        from tracelake.archiver.policy import PolicyError, load_policy

        policy = None
        if retention is not None:
            try:
                policy = load_policy(retention)
            except PolicyError as exc:
                _fail(f"retention file refused: {exc}", 2)
        store = _local_store(clickhouse_url, data_dir)
        try:
            doc = do_explain(store, trace_id, policy).to_dict()
        except (TraceNotFound, KeepError) as exc:
            _fail(str(exc))
        finally:
            store.close()
    else:
        from urllib.parse import quote

        doc = _call("GET", url, f"/api/traces/{quote(trace_id, safe='')}/retention")
    if json_output:
        typer.echo(json.dumps(doc, indent=2))
    else:
        _print_explain(doc)


def pin(trace_id: TraceArg,
        until: Annotated[Optional[str], typer.Option(help="How long (30d) or until when (ISO time); default: until unpinned")] = None,
        reason: Annotated[str, typer.Option(help="Why it is kept")] = "",
        url: UrlOpt = "http://127.0.0.1:4380", clickhouse_url: ClickHouseOpt = None, data_dir: DataDirOpt = None,
        json_output: JsonOpt = False) -> None:
    """Keep a trace hot and out of every deletion (until unpinned, or --until)."""
    if clickhouse_url or data_dir:
        from tracelake.archiver import keep
        from tracelake.archiver.explain import TraceNotFound
        from tracelake.store.tiers import locate

        store = _local_store(clickhouse_url, data_dir)
        try:
            when_ = keep.parse_until(until)
            tid = keep.check_trace_id(trace_id)
            if locate(store, tid) is None:
                raise TraceNotFound(f"no trace {tid} in the hot tier or the archive")
            doc = {"pin": keep.pin(store, tid, until=when_, actor=_local_actor(), reason=reason).to_dict()}
            _audit(store, "retention.pin", tid, f"until {doc['pin']['until'] or 'unpinned'}")
        except (ValueError, TraceNotFound) as exc:
            _fail(str(exc))
        finally:
            store.close()
    else:
        from urllib.parse import quote

        doc = _call("POST", url, f"/api/traces/{quote(trace_id, safe='')}/pin", {"until": until, "reason": reason})
    if json_output:
        typer.echo(json.dumps(doc, indent=2))
    else:
        p = doc["pin"]
        typer.echo(f"pinned {p['trace_id']} until {p['until'] or 'unpinned'}")


def unpin(trace_id: TraceArg, url: UrlOpt = "http://127.0.0.1:4380", clickhouse_url: ClickHouseOpt = None,
          data_dir: DataDirOpt = None) -> None:
    """Remove a trace's pin: the rules apply to it again at the next run."""
    if clickhouse_url or data_dir:
        from tracelake.archiver import keep

        store = _local_store(clickhouse_url, data_dir)
        try:
            done = keep.unpin(store, trace_id, actor=_local_actor())
            if done:
                _audit(store, "retention.unpin", trace_id.lower())
        except ValueError as exc:
            _fail(str(exc))
        finally:
            store.close()
    else:
        from urllib.parse import quote

        done = _call("DELETE", url, f"/api/traces/{quote(trace_id, safe='')}/pin")["unpinned"]
    typer.echo(f"unpinned {trace_id}" if done else f"{trace_id} had no active pin")


@hold_app.command("create")
def hold_create(name: Annotated[str, typer.Argument(help="A unique name, e.g. case-2026-114")],
                filter_text: Annotated[str, typer.Option("--filter", help="Which traces (the UI's filter language), e.g. user:alice")],
                reason: Annotated[str, typer.Option(help="Why they must be kept")],
                project: Annotated[Optional[str], typer.Option(
                    help="Cover only this project's traces (default: every project for an admin; a project's "
                         "key always makes holds of its own project)")] = None,
                url: UrlOpt = "http://127.0.0.1:4380", clickhouse_url: ClickHouseOpt = None,
                data_dir: DataDirOpt = None, json_output: JsonOpt = False) -> None:
    """Create a hold: nothing its filter matches (in --project, or in every project) is deleted, in
    any tier, until it is released."""
    if clickhouse_url or data_dir:
        from tracelake.archiver import keep

        store = _local_store(clickhouse_url, data_dir)
        try:
            h = keep.create_hold(store, name, filter_text, reason, actor=_local_actor(), project=project or "")
            _audit(store, "retention.hold.create", h.name, keep.audit_detail(h))
            doc = {"hold": h.to_dict()}
        except ValueError as exc:  # KeepError (HoldFilterError says "filter: ...")
            _fail(str(exc))
        finally:
            store.close()
    else:
        doc = _call("POST", url, "/api/holds", {"name": name, "filter": filter_text, "reason": reason,
                                                "project": project})
    if json_output:
        typer.echo(json.dumps(doc, indent=2))
    else:
        typer.echo(f"hold {doc['hold']['name']!r} created, project: {_scope(doc['hold'])}")


@hold_app.command("release")
def hold_release(name: Annotated[str, typer.Argument(help="The hold's name")], url: UrlOpt = "http://127.0.0.1:4380",
                 clickhouse_url: ClickHouseOpt = None, data_dir: DataDirOpt = None) -> None:
    """Release a hold: its traces follow the rules again from the next run."""
    if clickhouse_url or data_dir:
        from tracelake.archiver import keep

        store = _local_store(clickhouse_url, data_dir)
        try:
            h = keep.release_hold(store, name, actor=_local_actor())
            if h is None:
                _fail(f"no active hold named {name!r}")
            _audit(store, "retention.hold.release", name, keep.audit_detail(h, full=False))
        finally:
            store.close()
    else:
        from urllib.parse import quote

        _call("DELETE", url, f"/api/holds/{quote(name, safe='')}")
    typer.echo(f"hold {name!r} released")


@hold_app.command("list")
def hold_list(url: UrlOpt = "http://127.0.0.1:4380", clickhouse_url: ClickHouseOpt = None,
              data_dir: DataDirOpt = None, json_output: JsonOpt = False) -> None:
    """Every hold, active first, with who created and released it and when."""
    if clickhouse_url or data_dir:
        from tracelake.archiver import keep

        store = _local_store(clickhouse_url, data_dir)
        try:
            doc = {"holds": [h.to_dict() for h in keep.list_holds(store)]}
        finally:
            store.close()
    else:
        doc = _call("GET", url, "/api/holds")
    if json_output:
        typer.echo(json.dumps(doc, indent=2))
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    t = Table("name", "project", "filter", "reason", "created", "released", title="holds")
    for h in doc["holds"]:
        hidden = h.get("details") or ""  # a global hold seen by a project's key: no filter or reason
        t.add_row(escape(h["name"]), escape(_scope(h)), escape(h["filter"] or hidden), escape(h["reason"] or ""),
                  escape(f"{h['created'][:19]} by {h['actor']}"),
                  escape(f"{h['released'][:19]} by {h['released_by']}") if h["released"] else "active")
    if not doc["holds"]:
        t.caption = "no holds"
    Console().print(t)


def _scope(hold: dict[str, Any]) -> str:
    """A hold's project as the CLI says it (a hold without one covers every project)."""
    return hold.get("project") or "all projects"


def register(app: typer.Typer) -> None:
    """Add explain, pin, unpin and hold to ``tracelake archiver``."""
    app.command()(explain)
    app.command()(pin)
    app.command()(unpin)
    app.add_typer(hold_app, name="hold")
