"""The ``tracelake`` command: server, collector, ui, sql, export-scores."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from tracelake import server_client
from tracelake.terminal import safe_cell

# A traceback never prints local variables: they may hold keys or span content.
app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_show_locals=False,
                  help="tracelake: LLM tracing on OpenTelemetry and ClickHouse.")

DataDir = Annotated[Optional[Path], typer.Option(help="Data directory of the embedded store [env TRACELAKE_DATA_DIR]")]
Host = Annotated[Optional[str], typer.Option(help="Interface to listen on [env TRACELAKE_HOST, default 127.0.0.1]")]
GrpcPort = Annotated[Optional[int], typer.Option(help="OTLP/gRPC port, 0 = any free [env TRACELAKE_OTLP_GRPC_PORT, default 4317]")]
HttpPort = Annotated[Optional[int], typer.Option(help="OTLP/HTTP port, 0 = any free [env TRACELAKE_OTLP_HTTP_PORT, default 4318]")]
UiPort = Annotated[Optional[int], typer.Option(help="UI and /api/ port, 0 = any free [env TRACELAKE_UI_PORT, default 4380]")]
ClickHouseUrl = Annotated[Optional[str], typer.Option(help="ClickHouse server, e.g. http://user:pass@host:8123/tracelake [env TRACELAKE_CLICKHOUSE_URL]")]
PricesFile = Annotated[Optional[Path], typer.Option(help="JSON of model -> [input, output] USD per million tokens [env TRACELAKE_PRICES_FILE]")]
AckMode = Annotated[Optional[str], typer.Option(help="spool (ack once fsynced to the collector's spool) or commit (ack after the INSERT) [env TRACELAKE_ACK_MODE, default spool]")]
SpoolDir = Annotated[Optional[Path], typer.Option(help="Spool directory, one per collector process [env TRACELAKE_SPOOL_DIR, default <data-dir>/spool]")]
SpoolMaxBytes = Annotated[Optional[int], typer.Option(help="Spool size on disk past which requests get 503 [env TRACELAKE_SPOOL_MAX_BYTES, default 4 GiB]")]
ObjectStore = Annotated[Optional[str], typer.Option(help="Attachments store: file:///dir or s3://bucket/prefix [env TRACELAKE_OBJECT_STORE]")]
Auth = Annotated[Optional[bool], typer.Option("--auth/--no-auth", help="Require keys (default: on unless --host is loopback) [env TRACELAKE_AUTH]")]
Retention = Annotated[Optional[Path], typer.Option(help="Retention rules (YAML): run the archiver on a schedule [env TRACELAKE_RETENTION_FILE]")]
ArchiveEvery = Annotated[Optional[str], typer.Option(help="How often the archiver runs, e.g. 30m, 1h [env TRACELAKE_ARCHIVE_EVERY, default 1h]")]
Alerts = Annotated[Optional[Path], typer.Option(help="Alert rules (YAML), the source of truth for alerts [env TRACELAKE_ALERTS_FILE]")]
AlertsEvery = Annotated[Optional[str], typer.Option(help="How often alert rules are evaluated, e.g. 30s, 1m [env TRACELAKE_ALERTS_EVERY, default 1m]")]


def _settings(**flags: Any) -> Any:
    from pydantic import ValidationError

    from tracelake.config import Settings

    try:
        return Settings(**{k: v for k, v in flags.items() if v is not None})
    except ValidationError as exc:
        raise typer.BadParameter(str(exc)) from exc


@app.command()
def server(data_dir: DataDir = None, host: Host = None, otlp_grpc_port: GrpcPort = None,
           otlp_http_port: HttpPort = None, ui_port: UiPort = None, clickhouse_url: ClickHouseUrl = None,
           prices_file: PricesFile = None, object_store: ObjectStore = None, ack_mode: AckMode = None,
           spool_dir: SpoolDir = None, spool_max_bytes: SpoolMaxBytes = None, auth: Auth = None,
           retention: Retention = None, archive_every: ArchiveEvery = None, alerts: Alerts = None,
           alerts_every: AlertsEvery = None) -> None:
    """Collector and UI in one process, on the embedded store unless --clickhouse-url is given."""
    from tracelake.server import serve

    settings = _settings(data_dir=data_dir, host=host, otlp_grpc_port=otlp_grpc_port, otlp_http_port=otlp_http_port,
                         ui_port=ui_port, clickhouse_url=clickhouse_url, prices_file=prices_file,
                         object_store=object_store, ack_mode=ack_mode, spool_dir=spool_dir,
                         spool_max_bytes=spool_max_bytes, auth=auth, retention_file=retention,
                         archive_every=archive_every, alerts_file=alerts, alerts_every=alerts_every)
    raise typer.Exit(serve(settings))


@app.command()
def collector(clickhouse_url: ClickHouseUrl = None, host: Host = None, otlp_grpc_port: GrpcPort = None,
              otlp_http_port: HttpPort = None, data_dir: DataDir = None, prices_file: PricesFile = None,
              object_store: ObjectStore = None, ack_mode: AckMode = None, spool_dir: SpoolDir = None,
              spool_max_bytes: SpoolMaxBytes = None, auth: Auth = None) -> None:
    """The OTLP collector alone (run several against one ClickHouse server to scale out, each with its own spool)."""
    from tracelake.server import serve

    settings = _settings(clickhouse_url=clickhouse_url, host=host, otlp_grpc_port=otlp_grpc_port,
                         otlp_http_port=otlp_http_port, data_dir=data_dir, prices_file=prices_file,
                         object_store=object_store, ack_mode=ack_mode, spool_dir=spool_dir,
                         spool_max_bytes=spool_max_bytes, auth=auth)
    raise typer.Exit(serve(settings, ui_enabled=False))


@app.command()
def ui(clickhouse_url: ClickHouseUrl = None, host: Host = None, ui_port: UiPort = None,
       data_dir: DataDir = None, object_store: ObjectStore = None, auth: Auth = None) -> None:
    """The UI and /api/ alone, reading a ClickHouse server."""
    from tracelake.server import serve

    settings = _settings(clickhouse_url=clickhouse_url, host=host, ui_port=ui_port, data_dir=data_dir,
                         object_store=object_store, auth=auth)
    raise typer.Exit(serve(settings, collector_enabled=False))


@app.command()
def sql(query: Annotated[str, typer.Argument(help="A read-only SQL statement")],
        url: Annotated[str, typer.Option(envvar="TRACELAKE_URL", help="The running server's UI/API address")] = "http://127.0.0.1:4380",
        param: Annotated[Optional[list[str]], typer.Option(help="name=value for a {name:Type} placeholder")] = None,
        json_output: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")] = False) -> None:
    """Run read-only SQL on the running server (the embedded store belongs to its process)."""
    from rich.console import Console
    from rich.measure import Measurement
    from rich.table import Table

    params = {"q": query}
    for item in param or []:
        name, sep, value = item.partition("=")
        if not sep:
            raise typer.BadParameter(f"--param needs name=value, got {item!r}")
        params[f"param_{name}"] = value
    response = server_client.call("POST", url, "/api/sql", data=params, timeout=60)
    doc = response.json()
    if json_output:
        typer.echo(response.text)
        return
    console = Console()
    columns = [safe_cell(c) for c in doc["columns"]]
    rows = [["" if v is None else safe_cell(v) for v in row] for row in doc["rows"]]
    table = Table(*columns)
    for row in rows:
        table.add_row(*row)
    natural = Measurement.get(console, console.options.update_width(1 << 20), table)
    if natural.maximum <= console.width:
        console.print(table)
    else:  # a table this wide would be cut: one record per block, every column whole (psql's \x)
        print_records(console, columns, rows)
    if doc.get("truncated"):
        console.print(f"[yellow]{safe_cell(doc.get('note', 'result cut'))}[/yellow]")


def print_records(console: Any, columns: list[str], rows: list[list[str]]) -> None:
    """Rows as blocks of ``column  value`` lines, for results wider than the terminal."""
    from rich.table import Table

    for number, row in enumerate(rows, 1):
        console.rule(f"row {number}", align="left")
        record = Table.grid(padding=(0, 2))
        record.add_column(style="bold", no_wrap=True)
        record.add_column(overflow="fold")
        for name, value in zip(columns, row):
            record.add_row(name, value)
        console.print(record)


@app.command()
def demo(days: Annotated[int, typer.Option(min=1, max=30, help="Spread the sample over this many days back from now")] = 7,
         traces: Annotated[int, typer.Option(min=8, max=100_000, help="Traces to send (one of them the big trace)")] = 400,
         big_spans: Annotated[int, typer.Option(min=10, max=100_000, help="Spans of the big trace")] = 3000,
         seed: Annotated[int, typer.Option(help="Fixes the sample's content; ids are new every run")] = 7,
         endpoint: Annotated[str, typer.Option(envvar="OTEL_EXPORTER_OTLP_ENDPOINT", help="OTLP/HTTP endpoint (/v1/traces is appended)")] = "http://127.0.0.1:4318",
         url: Annotated[str, typer.Option(envvar="TRACELAKE_URL", help="The running server's UI/API address")] = "http://127.0.0.1:4380",
         key: Annotated[Optional[str], typer.Option(envvar="TRACELAKE_KEY", show_default=False, help="With auth on: an ingest (or admin) key, sent on OTLP and on the reads")] = None,
         timeout: Annotated[float, typer.Option(help="Seconds to wait until the sample is readable")] = 120.0) -> None:
    """Send a sample of LLM-agent traces over the last days (agents, sessions, errors, an image, a big trace)
    to the running server, wait until it is readable, and print where to look."""
    from tracelake.demo import run_demo, summary

    result = run_demo(days=days, traces=traces, seed=seed, endpoint=endpoint, ui=url, key=(key or "").strip(),
                      timeout=timeout, big_spans=big_spans)
    typer.echo(summary(result, url, days))


@app.command("export-scores")
def export_scores(filter_: Annotated[str, typer.Option("--filter", help="Which traces (filter language)")] = "has:score.thumbs",
                  range_: Annotated[str, typer.Option("--range", help="Time range ending now: 1h, 24h, 7d, 30d")] = "7d",
                  limit: Annotated[int, typer.Option(min=1, max=100_000, help="At most this many traces")] = 100_000,
                  url: Annotated[str, typer.Option(envvar="TRACELAKE_URL", help="The running server's UI/API address")] = "http://127.0.0.1:4380") -> None:
    """Print traces matching a filter with their scores as JSON lines (an evaluation set; docs/scores.md)."""
    import sys

    params = {"q": filter_, "range": range_, "limit": str(limit)}
    with server_client.stream("GET", url, "/api/export/scores.jsonl", params=params) as response:
        for chunk in response.iter_bytes():
            sys.stdout.buffer.write(chunk)
    sys.stdout.flush()


# `tracelake keys ...`: talks to the running server like `tracelake sql` (the CLI never opens the store).
from tracelake.cli_keys import keys_app  # noqa: E402

app.add_typer(keys_app, name="keys")


def _archiver_commands() -> None:
    from tracelake.archiver.cli import app as archiver_app

    app.add_typer(archiver_app, name="archiver")
    from tracelake.archiver.cli_erase import erase

    app.command()(erase)  # tracelake erase


_archiver_commands()


def main() -> None:
    try:
        app()
    except server_client.ServerError as exc:  # a server's refusal: one line that says what to do
        typer.echo(f"error: {exc}", err=True)
        raise SystemExit(exc.exit_code) from None


if __name__ == "__main__":  # pragma: no cover
    main()
