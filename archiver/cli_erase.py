"""``tracelake erase`` and ``tracelake archiver restore``.

As the other archiver commands: with the embedded store they ask the running server (``--url``);
``--data-dir`` opens an embedded store directly (no server on it), ``--clickhouse-url`` runs on
its own against a ClickHouse server.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from tracelake.archiver.cli import ClickHouseOpt, DataDirOpt, JsonOpt, ObjectStoreOpt, UrlOpt, _fail


def _settings(clickhouse_url: str | None, data_dir: Path | None, object_store: str | None) -> Any:
    from pydantic import ValidationError

    from tracelake.config import Settings

    flags = {"clickhouse_url": clickhouse_url, "data_dir": data_dir.resolve() if data_dir else None,
             "object_store": object_store}
    try:
        return Settings(**{k: v for k, v in flags.items() if v is not None})
    except ValidationError as exc:
        _fail(str(exc), 2)


def _on_own(settings: Any, work: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
    """``work(store)`` on a store of its own (no server): its answer as JSON types; a refusal
    (:class:`~tracelake.archiver.errors.RetentionError`) ends the command with its message."""
    from tracelake.archiver.errors import RetentionError
    from tracelake.store import open_store

    store = open_store(settings.data_dir, settings.clickhouse_url, settings.prices_file)
    try:
        return json.loads(json.dumps(work(store), default=str))
    except RetentionError as exc:
        _fail(str(exc), 1)
    finally:
        store.close()


def _audit(store: Any, action: str, target: str, detail: str, outcome: str = "ok") -> None:
    """Run on its own (no server, no caller): recorded as the local operator."""
    from tracelake.auth import audit

    audit.record(store, actor="local", role="local", action=action, target=target, detail=detail, outcome=outcome)


def _post(url: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """The running server's JSON answer; its refusal (or why it cannot be reached) ends the command."""
    from tracelake import server_client

    return server_client.call("POST", url, path, json=body, timeout=None,
                              hint="use --data-dir or --clickhouse-url to run on its own").json()


def _print_receipt(doc: dict[str, Any]) -> None:
    from rich.console import Console

    from tracelake.terminal import safe_cell

    c = Console()
    if doc.get("dry_run"):
        c.print(f"dry run: {len(doc['matched_trace_ids'])} trace(s) would be erased "
                f"({doc['hot_traces']} hot, {doc['archive_traces']} archived); nothing changed")
        for tid in doc["matched_trace_ids"][:50]:
            c.print(f"  {safe_cell(tid)}")
        return
    spans = doc["spans"]
    c.print(f"erasure {safe_cell(doc['request_id'])}: {len(doc['matched_trace_ids'])} trace(s); spans hot "
            f"{spans['before']['hot']} -> {spans['after']['hot']}, archive {spans['before']['archive']} -> "
            f"{spans['after']['archive']}; Delta files rewritten {doc['delta'].get('files_rewritten', 0)}, "
            f"vacuumed {len(doc['delta'].get('vacuumed', []))}; blobs removed {len(doc['blobs_removed'])}")
    c.print(f"spool: {safe_cell(doc['spool'].get('note', ''))}")
    if doc.get("replaced_parts_left"):
        c.print(f"[yellow]{len(doc['replaced_parts_left'])} replaced ClickHouse part(s) not yet removed[/yellow]")


def erase(user: Annotated[Optional[str], typer.Option(help="Erase every trace of this user id")] = None,
          session: Annotated[Optional[str], typer.Option(help="Erase every trace of this session id")] = None,
          filter_text: Annotated[Optional[str], typer.Option("--filter", help="Erase the traces this filter matches")] = None,
          dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would be matched; change nothing")] = False,
          url: UrlOpt = "http://127.0.0.1:4380", clickhouse_url: ClickHouseOpt = None, data_dir: DataDirOpt = None,
          object_store: ObjectStoreOpt = None, json_output: JsonOpt = False) -> None:
    """Erase every span of the matched traces from every tier, and print the receipt."""
    body = {"user": user, "session": session, "filter": filter_text, "dry_run": dry_run}
    if clickhouse_url or data_dir:
        from tracelake.archiver.config import ArchiverConfig
        from tracelake.archiver.erase import Criteria, erase_audited, eraser_for, spool_probe_for_dir

        settings = _settings(clickhouse_url, data_dir, object_store)
        config = ArchiverConfig.from_settings(settings)
        probe = spool_probe_for_dir(config.spool_dir)  # beside an embedded store: its collector's spool on disk
        doc = _on_own(settings, lambda store: erase_audited(
            eraser_for(store, config, probe), Criteria(user, session, filter_text),
            partial(_audit, store), dry_run=dry_run))
    else:
        doc = _post(url, "/api/erase", body)
    if json_output:
        typer.echo(json.dumps(doc, indent=2))
    else:
        _print_receipt(doc)


def restore(trace_id: Annotated[Optional[str], typer.Argument(help="The archived trace to bring back")] = None,
            filter_text: Annotated[Optional[str], typer.Option("--filter", help="Restore every archived trace this filter matches")] = None,
            pin_for: Annotated[Optional[str], typer.Option(help="Keep them hot this long (pinned) [env TRACELAKE_RESTORE_PIN_FOR, default 7d]")] = None,
            url: UrlOpt = "http://127.0.0.1:4380", clickhouse_url: ClickHouseOpt = None, data_dir: DataDirOpt = None,
            object_store: ObjectStoreOpt = None, json_output: JsonOpt = False) -> None:
    """Bring archived traces back to the hot tier, pinned, without duplicating them."""
    from tracelake.durations import parse_duration

    if (trace_id is None) == (filter_text is None):
        _fail("give a TRACE_ID or --filter TEXT (one of them)", 2)
    if pin_for is not None:
        try:
            parse_duration(pin_for, allow_forever=False)
        except ValueError as exc:
            _fail(f"--pin-for: {exc}", 2)
    if clickhouse_url or data_dir:
        from tracelake.archiver.config import ArchiverConfig
        from tracelake.archiver.restore import pin_duration, restore_audited, restorer_for

        settings = _settings(clickhouse_url, data_dir, object_store)
        config = ArchiverConfig.from_settings(settings)
        duration = pin_duration(pin_for, config)
        doc = _on_own(settings, lambda store: restore_audited(
            restorer_for(store, config), partial(_audit, store), trace_id=trace_id,
            filter_text=filter_text, pin_for=duration))
    else:
        body = {"filter": filter_text, "pin_for": pin_for}
        path = f"/api/traces/{trace_id}/restore" if trace_id is not None else "/api/restore"
        doc = _post(url, path, body)
    if json_output:
        typer.echo(json.dumps(doc, indent=2))
    else:
        typer.echo(f"restored {len(doc['trace_ids'])} trace(s), {doc.get('spans_restored', 0)} spans, "
                   f"pinned until {doc.get('pinned_until')}")
