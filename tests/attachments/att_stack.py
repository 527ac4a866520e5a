"""Collector + API in one subprocess, wired as ``tracelake server`` will be with attachments.

Run as ``python att_stack.py DATA_DIR``; configuration comes from TRACELAKE_* env vars (object
store, S3 endpoint, limits). Prints one JSON line ``{"otlp": port, "ui": port}`` when listening,
and shuts down cleanly (commit, flush the attachment index) on SIGTERM.

A subprocess, not a thread: chdb allows one data path per process, and each test module here
wants its own store. Until ``tracelake server`` builds the extractor with the store, this is the
wiring the lead is asked to copy (see docs/attachments.md).
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import sys
from collections.abc import Iterator

import uvicorn

from tracelake.collector.config import from_settings
from tracelake.collector.http import create_otlp_app
from tracelake.collector.media import build_body_hook
from tracelake.collector.service import Collector
from tracelake.config import Settings
from tracelake.store import open_store
import tracelake.web
from tracelake.web import create_app


def _sock() -> socket.socket:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(128)
    return s


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:  # handled once below for both servers
        yield


async def main(data_dir: str) -> None:
    settings = Settings(data_dir=data_dir)
    store = open_store(settings.data_dir)
    hook = build_body_hook(settings, store)
    collector = Collector(store, from_settings(settings), body_hook=hook)
    collector.start()
    # Only the parts these tests exercise: the UI (developed in parallel) is not needed here.
    tracelake.web.EXTENSIONS = ("tracelake.attachments",)
    web = create_app(store, settings, collector)
    if hook is not None:
        web.state.object_store = hook.object_store  # one client for both sides
    socks = [_sock(), _sock()]
    servers = [_Server(uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False))
               for app in (create_otlp_app(collector), web)]
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: [setattr(s, "should_exit", True) for s in servers])
    print(json.dumps({"otlp": socks[0].getsockname()[1], "ui": socks[1].getsockname()[1]}), flush=True)
    try:
        await asyncio.gather(*(s.serve(sockets=[k]) for s, k in zip(servers, socks)))
    finally:
        collector.stop()
        if hook is not None:
            hook.close()
        store.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
