"""``tracelake archiver plan|run|runs``.

With the embedded store the data belongs to the running server, so these talk to it over HTTP
(``--url``, as ``tracelake sql`` does). With ``--clickhouse-url`` they run on their own. ``--data-dir``
opens an embedded store directly, for when no server is running on it (never both at once).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Move traces between hot ClickHouse and the Delta Lake archive by retention rules.")

RetentionOpt = Annotated[Optional[Path], typer.Option("--retention", help="Retention rules (YAML); default: the server's [env TRACELAKE_RETENTION_FILE]")]
UrlOpt = Annotated[str, typer.Option(envvar="TRACELAKE_URL", help="The running server's UI/API address")]
ClickHouseOpt = Annotated[Optional[str], typer.Option(help="Run on its own against this ClickHouse server [env TRACELAKE_CLICKHOUSE_URL]")]
DataDirOpt = Annotated[Optional[Path], typer.Option(help="Open this embedded store directly (only when no server runs on it)")]
ObjectStoreOpt = Annotated[Optional[str], typer.Option(help="Object store holding the archive [env TRACELAKE_OBJECT_STORE]")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables")]


def _fail(message: str, code: int = 1) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _local_archiver(retention: Path | None, clickhouse_url: str | None, data_dir: Path | None,
                    object_store: str | None) -> Any:
    from pydantic import ValidationError

    from tracelake.archiver.policy import PolicyError, load_policy
    from tracelake.archiver.config import ArchiverConfig
    from tracelake.archiver.service import archiver_for
    from tracelake.config import Settings

    flags = {"clickhouse_url": clickhouse_url, "data_dir": data_dir.resolve() if data_dir else None,
             "object_store": object_store, "retention_file": retention}
    try:
        settings = Settings(**{k: v for k, v in flags.items() if v is not None})
    except ValidationError as exc:
        _fail(str(exc), 2)
    policy = None
    if settings.retention_file is not None:
        try:
            policy = load_policy(settings.retention_file)
        except PolicyError as exc:
            _fail(f"retention file refused: {exc}", 2)
    from tracelake.store import open_store

    store = open_store(settings.data_dir, settings.clickhouse_url, settings.prices_file)
    if policy is None:  # rules: those applied on the Retention page, kept in the store
        from tracelake.archiver.rules import stored_policy

        _, policy, error = stored_policy(store)
        if policy is None:
            store.close()
            _fail(error or "--retention FILE is needed when running on its own (no rules were applied on the "
                  "Retention page either)", 2)
    return archiver_for(store, ArchiverConfig.from_settings(settings), policy)


HINT = "use --clickhouse-url to run on its own"


def _body(retention: Path | None) -> dict[str, Any]:
    """The rules to send with a plan or run, refused here first with the file's own name."""
    body: dict[str, Any] = {}
    if retention is not None:
        from tracelake.archiver.policy import PolicyError, load_policy

        try:
            load_policy(retention)
        except PolicyError as exc:
            _fail(f"retention file refused: {exc}", 2)
        body["retention"] = retention.read_text(encoding="utf-8")
    return body


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _print_plan(doc: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table("day", "rule", "action", "traces", "spans", "bytes", title=f"archive plan at {doc['now']}")
    for r in doc["rows"]:
        table.add_row(r["day"], r["rule"], r["action"], f"{r['traces']:,}", f"{r['spans']:,}", _size(r["bytes"]))
    for action, t in sorted(doc["totals"].items()):
        table.add_row("total", "", action, f"{t['traces']:,}", f"{t['spans']:,}", _size(t["bytes"]), style="bold")
    if not doc["rows"]:
        table.caption = "nothing to move or delete"
    Console().print(table)


def _print_runs(runs: list[dict[str, Any]], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table("run", "state", "traces", "spans", "archive bytes", "deleted traces", "dropped partitions",
                  "seconds", "error", title=title)
    for r in runs:
        secs = r.get("duration_s")
        table.add_row(r["run_id"], r["state"], f"{r['traces']:,}", f"{r['spans']:,}", _size(r["archive_bytes"]),
                      f"{r['deleted_traces']:,}", str(r["dropped_partitions"]),
                      "" if secs is None else f"{secs:.1f}", r.get("error") or "")
    Console().print(table)


class _Bars:
    """rich progress bars, one per phase (archive, delete hot, expire)."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), transient=False)
        self.tasks: dict[str, Any] = {}

    def __enter__(self) -> "_Bars":
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.__exit__(*exc)

    def __call__(self, phase: str, done: int, total: int) -> None:
        if phase not in self.tasks:
            self.tasks[phase] = self.progress.add_task(phase, total=total)
        self.progress.update(self.tasks[phase], completed=done, total=total)


@app.command()
def plan(retention: RetentionOpt = None, url: UrlOpt = "http://127.0.0.1:4380", clickhouse_url: ClickHouseOpt = None,
         data_dir: DataDirOpt = None, object_store: ObjectStoreOpt = None, json_output: JsonOpt = False) -> None:
    """Per rule and day: traces, spans and bytes a run starting now would archive and delete. Changes nothing."""
    if clickhouse_url or data_dir:
        archiver = _local_archiver(retention, clickhouse_url, data_dir, object_store)
        try:
            doc = json.loads(json.dumps(archiver.plan().to_dict(), default=str))
        finally:
            archiver.store.close()
    else:
        from tracelake import server_client

        doc = server_client.call("POST", url, "/api/archiver/plan", json=_body(retention), timeout=None,
                                 hint=HINT).json()
    if json_output:
        typer.echo(json.dumps(doc, indent=2))
    else:
        _print_plan(doc)


@app.command()
def run(retention: RetentionOpt = None, url: UrlOpt = "http://127.0.0.1:4380", clickhouse_url: ClickHouseOpt = None,
        data_dir: DataDirOpt = None, object_store: ObjectStoreOpt = None, json_output: JsonOpt = False) -> None:
    """One archiver pass (finishing any run left midway first); prints what it did."""
    if clickhouse_url or data_dir:
        archiver = _local_archiver(retention, clickhouse_url, data_dir, object_store)
        try:
            with _Bars() as bars:
                result = archiver.run_once(progress=None if json_output else bars)
            doc = json.loads(json.dumps(result.to_dict(), default=str))
        except Exception as exc:  # noqa: BLE001 - the run stays resumable; say so
            _fail(f"archive run failed (rerun to resume): {type(exc).__name__}: {exc}")
        finally:
            archiver.store.close()
    else:
        from tracelake import server_client

        doc = None
        with server_client.stream("POST", url, "/api/archiver/run", json=_body(retention), hint=HINT) as response:
            with _Bars() as bars:
                for line in response.iter_lines():
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    if event["event"] == "progress" and not json_output:
                        bars(event["phase"], event["done"], event["total"])
                    elif event["event"] == "error":
                        _fail(f"archive run failed (rerun to resume): {event['error']}")
                    elif event["event"] == "result":
                        doc = {"runs": event["runs"]}
        if doc is None:
            _fail("the server closed the connection before the run finished (rerun to resume)")
    if json_output:
        typer.echo(json.dumps(doc, indent=2))
    else:
        _print_runs(doc["runs"], "archive run")


@app.command()
def runs(url: UrlOpt = "http://127.0.0.1:4380", clickhouse_url: ClickHouseOpt = None, data_dir: DataDirOpt = None,
         limit: Annotated[int, typer.Option(help="How many runs")] = 20, json_output: JsonOpt = False) -> None:
    """Recent runs, newest first."""
    if clickhouse_url or data_dir:
        from tracelake.archiver.runs import list_runs
        from tracelake.store import open_store

        store = open_store(data_dir.resolve() if data_dir else None, clickhouse_url)
        try:
            doc = json.loads(json.dumps({"runs": [r.to_dict() for r in list_runs(store, limit)]}, default=str))
        finally:
            store.close()
    else:
        from tracelake import server_client

        doc = server_client.call("GET", url, "/api/archiver/runs", params={"limit": limit}, timeout=60, hint=HINT).json()
    if json_output:
        typer.echo(json.dumps(doc, indent=2))
    else:
        _print_runs(doc["runs"], "archive runs")


@app.command()
def reindex(clickhouse_url: ClickHouseOpt = None, data_dir: DataDirOpt = None,
            hot: Annotated[bool, typer.Option(help="Also build the hot tier's text index in parts written before it")] = True) -> None:
    """Build the search indexes where they are missing: the archive's term index for every file
    that has none (archives written before it, files rewritten by an erasure) and, with --hot, the
    hot tier's text index in older parts. Searches are exact without them, only slower."""
    from tracelake.archiver import text_index
    from tracelake.archiver.config import ArchiverConfig
    from tracelake.archiver.service import ensure_archive_view
    from tracelake.config import Settings
    from tracelake.store import open_store
    from tracelake.store.search_text import HOT_INDEX_BUILD

    flags = {"clickhouse_url": clickhouse_url, "data_dir": data_dir.resolve() if data_dir else None}
    settings = Settings(**{k: v for k, v in flags.items() if v is not None})
    store = open_store(settings.data_dir, settings.clickhouse_url)
    try:
        location = ArchiverConfig.from_settings(settings).location
        if not ensure_archive_view(store, location):
            _fail(f"the archive at {location.uri} cannot be reached")
        with _Bars() as bars:
            n = text_index.index_pending(store, location, text_index.live_files(location),
                                         lambda i, total: bars("index archive files", i, total))
        typer.echo(f"archive: {n} file(s) indexed")
        if hot:
            store.execute(HOT_INDEX_BUILD)  # a mutation: ClickHouse builds it part by part
            typer.echo("hot tier: text index build started for older parts (system.mutations shows progress)")
    finally:
        store.close()


def _restore_command() -> None:
    from tracelake.archiver.cli_erase import restore

    app.command()(restore)  # tracelake archiver restore


_restore_command()

from tracelake.archiver.cli_keep import register as _register_keep  # noqa: E402 - explain, pin, unpin, hold

_register_keep(app)
