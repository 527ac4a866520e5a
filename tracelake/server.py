"""Run the collector and/or the UI in one process: uvicorn for HTTP, grpcio for gRPC.

Shutdown (SIGTERM, SIGINT): stop accepting, let in-flight requests finish (they wait for their
fsync or commit), load or commit everything already acked (in spool mode, what cannot be loaded
before the timeout stays durable in the spool for the next start), then close the store.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import uvicorn

from tracelake.config import Settings
from tracelake.store import open_store

log = logging.getLogger("tracelake")


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # Signals are handled once for the whole process (several servers share the loop).
        yield


class StartError(Exception):
    """The server cannot start for a reason the person starting it can fix: one line says which."""


def _port_taken(host: str, port: int, what: str, flag: str, exc: Exception) -> StartError:
    reason = getattr(exc, "strerror", None) or "the address is in use or not allowed"
    return StartError(f"cannot listen on {host}:{port} for {what}: {reason} "
                      f"(another tracelake running? stop it, or choose another port with {flag}, 0 = any free)")


def _bind(host: str, port: int, what: str, flag: str) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise _port_taken(host, port, what, flag, exc) from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _http_server(app: Any, sock: socket.socket) -> tuple[_Server, socket.socket]:
    config = uvicorn.Config(app, loop="uvloop", http="httptools", lifespan="off", log_level="warning",
                            access_log=False, timeout_graceful_shutdown=60)
    return _Server(config), sock


def _body_hook(settings: Settings, store: Any) -> Any:
    """The attachment extractor (None when extraction is turned off)."""
    from tracelake.collector.media import build_body_hook

    return build_body_hook(settings, store)


def _claim_data_dir(data_dir: Path) -> Any:
    """The embedded store belongs to one process: a second server on the same directory is told
    so in one line (chdb itself only says "Error initializing EmbeddedServer")."""
    import fcntl

    data_dir.mkdir(parents=True, exist_ok=True)
    handle = open(data_dir / "tracelake.pid", "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        pid = handle.read().strip() or "?"
        handle.close()
        raise StartError(f"the data directory {data_dir} is in use by another tracelake process (pid {pid}): stop it, "
                         "or start this one with another --data-dir") from None
    handle.truncate(0)
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle  # the lock lasts while this stays open


def _open_store(settings: Settings, collector_only: bool) -> Any:
    """The store; a spooling collector alone starts even while ClickHouse is unreachable (it acks into
    its spool and connects, migrations included, once ClickHouse answers)."""
    from tracelake.store import StoreUnavailable

    def opener() -> Any:
        from tracelake.store.limits import QueryLimits

        return open_store(settings.data_dir, settings.clickhouse_url, settings.prices_file,
                          limits=QueryLimits.from_settings(settings))

    try:
        return opener()
    except StoreUnavailable as exc:
        if not (collector_only and settings.clickhouse_url and settings.ack_mode == "spool"):
            raise
        from tracelake.store.deferred import DeferredStore

        log.warning("%s; acking into the spool and loading once ClickHouse answers", exc)
        return DeferredStore(opener, database="", description=f"ClickHouse at {settings.clickhouse_url} "
                             "(unreachable at start)")


def serve(settings: Settings, *, collector_enabled: bool = True, ui_enabled: bool = True) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    policy = _retention_policy(settings)  # a bad retention file stops us before anything starts
    if policy is False or not _alert_rules_valid(settings):
        return 2
    settings = _absolute_paths(settings)
    try:
        claim = None if settings.clickhouse_url else _claim_data_dir(settings.data_dir)
    except StartError as exc:
        print(f"tracelake: {exc}", file=sys.stderr, flush=True)
        return 2
    store = _open_store(settings, collector_only=collector_enabled and not ui_enabled)
    archiver, scheduler = None, None
    alerts, alerts_scheduler = None, None
    ui_app = None
    collector = None
    http_servers: list[tuple[_Server, socket.socket]] = []
    grpc_server = None
    lines = [f"tracelake {_version()}: store is {store.description}"]
    try:
        from tracelake.auth import bootstrap, ingest

        registry, auth_lines = bootstrap.start(settings, store)  # None: auth off (see docs/security.md)
        lines += auth_lines
        if collector_enabled:
            from tracelake.collector.config import from_settings
            from tracelake.collector.grpc_server import start_grpc
            from tracelake.collector.http import create_otlp_app
            from tracelake.collector.service import Collector

            collector = Collector(store, from_settings(settings), body_hook=_body_hook(settings, store))
            collector.start()
            try:
                grpc_server, grpc_port = start_grpc(collector, settings.host, settings.otlp_grpc_port,
                                                    interceptors=ingest.grpc_interceptors(registry, settings))
            except (OSError, RuntimeError) as exc:  # grpcio says only that the port could not be bound
                raise _port_taken(settings.host, settings.otlp_grpc_port, "OTLP/gRPC", "--otlp-grpc-port", exc) from None
            otlp_sock = _bind(settings.host, settings.otlp_http_port, "OTLP/HTTP", "--otlp-http-port")
            otlp_app = create_otlp_app(collector)
            if registry is not None:
                otlp_app = ingest.OtlpAuthMiddleware(otlp_app, registry, settings)
            http_servers.append(_http_server(otlp_app, otlp_sock))
            lines.append(f"  OTLP/gRPC   {settings.host}:{grpc_port}")
            lines.append(f"  OTLP/HTTP   http://{settings.host}:{otlp_sock.getsockname()[1]}/v1/traces")
            spool_dir = collector.config.spool.directory
            lines.append(f"  acks        after fsync to the spool at {spool_dir}" if spool_dir is not None
                         else "  acks        after the INSERT commits (no spool)")
        stored = ui_enabled and policy is None
        if stored:
            policy = _stored_policy(store, lines)  # rules edited on the Retention page (no --retention)
        if ui_enabled or policy is not None:
            from tracelake.archiver.config import ArchiverConfig
            from tracelake.archiver.service import start_for_server

            archiver, scheduler = start_for_server(store, ArchiverConfig.from_settings(settings), policy)
            if stored and archiver is not None:
                from tracelake.archiver.rules import refresh_from_store

                archiver.refresh_policy = refresh_from_store  # versions applied by other processes too
            if archiver is not None:
                lines.append(f"  archive     {archiver.location.uri} (every {settings.archive_every})")
        if ui_enabled:
            alerts, alerts_scheduler = _start_alerts(settings, store, lines)
            from tracelake.web import create_app

            ui_sock = _bind(settings.host, settings.ui_port, "the UI and API", "--ui-port")
            ui_app = create_app(store, settings, collector)
            ui_app.state.archiver = archiver
            ui_app.state.scheduler = scheduler  # applying rules from the page may start or swap them
            ui_app.state.alerts = alerts  # the Alerts page reads its states and asks it for rounds
            ui_app.state.alerts_scheduler = alerts_scheduler
            if registry is not None and not getattr(ui_app.state, "auth_guarded", False):
                raise RuntimeError("auth is on but the UI/API guard is not installed")  # never serve it open
            http_servers.append(_http_server(ui_app, ui_sock))
            lines.append(f"  UI and API  http://{settings.host}:{ui_sock.getsockname()[1]}")
        if not settings.clickhouse_url:
            lines.append(f"  data        {settings.data_dir.resolve()}")
        print("\n".join(lines), flush=True)
        asyncio.run(_run(http_servers))
    except StartError as exc:
        print(f"tracelake: {exc}", file=sys.stderr, flush=True)
        return 2
    finally:
        scheduler = getattr(getattr(ui_app, "state", None), "scheduler", scheduler)
        if scheduler is not None:
            scheduler.stop()
        if alerts_scheduler is not None:
            alerts_scheduler.stop()
        if grpc_server is not None:
            grpc_server.stop(grace=30).wait()
        drained = collector.stop() if collector is not None else True
        if collector is not None and collector.mode == "spool" and not drained:
            # Nothing acked is lost: what was not loaded yet is durable in the spool, loaded at the next start.
            print("tracelake: spool not empty at shutdown; it is loaded at the next start", flush=True)
            drained = True
        close_hook = getattr(collector and collector.body_hook, "close", None)
        if close_hook is not None:
            close_hook()  # flush the attachments index before the store goes
        store.close()
        if claim is not None:
            claim.close()
        print("tracelake: stopped" + ("" if drained else " (some accepted spans were not committed)"), flush=True)
    return 0 if drained else 1


async def _run(servers: list[tuple[_Server, socket.socket]]) -> None:
    loop = asyncio.get_running_loop()

    def stop() -> None:
        for server, _ in servers:
            server.should_exit = True

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop)
    await asyncio.gather(*(server.serve(sockets=[sock]) for server, sock in servers))


def _absolute_paths(settings: Settings) -> Settings:
    """Paths made absolute once: the archiver may move the process to / (see archiver.service)."""
    update: dict[str, Any] = {"data_dir": settings.data_dir.resolve()}
    for name in ("spool_dir", "prices_file", "retention_file", "alerts_file"):
        if getattr(settings, name) is not None:
            update[name] = getattr(settings, name).expanduser().resolve()
    store_url = settings.object_store
    if store_url and "://" not in store_url:
        update["object_store"] = str(Path(store_url).expanduser().resolve())
    return settings.model_copy(update=update)


def _retention_policy(settings: Settings) -> Any:
    """The validated retention policy, None without one, False (message printed) when it is bad."""
    if settings.retention_file is None:
        return None
    from tracelake.archiver.policy import PolicyError, load_policy

    try:
        return load_policy(settings.retention_file)
    except PolicyError as exc:
        print(f"tracelake: retention file refused: {exc}", file=sys.stderr, flush=True)
        return False


def _alert_rules_valid(settings: Settings) -> bool:
    """A bad alerts file stops the start with its line and field (printed)."""
    if settings.alerts_file is None:
        return True
    from tracelake.alerts.errors import RuleFileError
    from tracelake.alerts.rulefile import load_rules

    try:
        load_rules(settings.alerts_file)
    except RuleFileError as exc:
        print(f"tracelake: alerts file refused: {exc}", file=sys.stderr, flush=True)
        return False
    return True


def _start_alerts(settings: Settings, store: Any, lines: list[str]) -> tuple[Any, Any]:
    """The alert rules' evaluation on its schedule, over the dashboard's per-trace rows (one
    process should evaluate: several would each send every message)."""
    if not settings.alerts_evaluate:
        lines.append("  alerts      not evaluated in this process (alerts_evaluate off)")
        return None, None
    from tracelake.alerts.config import AlertsConfig
    from tracelake.alerts.service import start_for_server
    from tracelake.ui.queries.dashboard import trace_rows

    config = AlertsConfig.from_settings(settings)
    engine, scheduler = start_for_server(store, config, trace_rows)
    where = f"file {config.rules_file}" if config.rules_file else "the Alerts page"
    lines.append(f"  alerts      {len(engine.rules.rules)} rules from {where} (every {settings.alerts_every})")
    return engine, scheduler


def _stored_policy(store: Any, lines: list[str]) -> Any:
    """The newest rules version applied from the Retention page, None when there is none or it
    no longer validates (said at start; the server runs without archiving until a valid apply)."""
    from tracelake.archiver.rules import stored_policy

    version, policy, error = stored_policy(store)
    if error:
        print(f"tracelake: {error}; not archiving until rules are applied again", file=sys.stderr, flush=True)
    elif version is not None:
        lines.append(f"  rules       version {version.version} applied on the Retention page by {version.actor}")
    return policy


def _version() -> str:
    from tracelake import __version__

    return __version__


if __name__ == "__main__":  # pragma: no cover
    sys.exit(serve(Settings()))
