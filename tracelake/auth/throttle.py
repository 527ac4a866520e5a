"""Failed authentication: limited per source address and per key id, audited in aggregate
(docs/security.md "Failed authentication").

* A source (the client's address; an IPv6 address counts as its /64) with ``auth_fail_per_source``
  failed keys or sign-ins within a window of ``auth_fail_window_s`` gets 429 with Retry-After for
  the rest of the window, on every port, *before* its keys are checked: a flood of made-up keys
  then costs neither a key lookup in the store nor an audit row each.
* A key id named by ``auth_fail_per_key`` failed attempts within a window: further *wrong*
  secrets for it get 429 instead of 401. The key is still checked, so its holder, elsewhere, keeps
  working; nobody can lock a key out by knowing its public id.
* The audit log gets, per source and window, the first failure, one row when the source is
  limited, and one row with the counts when the window ends; rows written one by one are capped
  per window for all sources together, the rest are counted in a summary row.

The source is the connection's peer, or, when the peer is a trusted proxy (``auth_proxy_trusted``),
the right-most address in ``X-Forwarded-For`` that is not a trusted proxy itself. A trusted proxy
is never refused as a source itself (it stands for all its clients; its failures are still counted
and audited, and per key id limits apply): configure it to send ``X-Forwarded-For``.
"""
from __future__ import annotations

import ipaddress
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any

MAX_TRACKED = 50_000  # sources or key ids followed at once; past it, new ones are counted, not limited
MAX_ROWS_PER_WINDOW = 200  # first-failure rows per window, all sources together
SWEEP_EVERY_S = 1.0


def forwarded_client(peer: str, forwarded_for: str, trusted: list[str] | frozenset[str]) -> str:
    """The real client of a connection from ``peer`` carrying ``X-Forwarded-For: forwarded_for``."""
    if not forwarded_for or peer not in trusted:
        return peer
    hops = []
    for hop in forwarded_for.split(","):
        try:
            hops.append(str(ipaddress.ip_address(hop.strip().strip("[]"))))
        except ValueError:
            return peer  # not an address list we understand: the proxy itself is the source
    for hop in reversed(hops):
        if hop not in trusted:
            return hop
    return hops[0] if hops else peer


def client_address(scope: dict, trusted: list[str]) -> str:
    """The real client of an ASGI request."""
    client = scope.get("client")
    peer = str(client[0]) if client else ""
    forwarded = b""
    for name, value in scope.get("headers") or ():
        if name.lower() == b"x-forwarded-for":
            forwarded = value if not forwarded else forwarded + b"," + value
    return forwarded_client(peer, forwarded.decode("latin-1"), trusted)


def grpc_peer_address(peer: str) -> str:
    """``ipv4:1.2.3.4:5678`` / ``ipv6:[::1]:5678`` (grpc's ``context.peer()``) -> the address."""
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        return rest.rpartition(":")[0]
    if kind == "ipv6":
        return rest.rpartition(":")[0].strip("[]")
    return kind or "unknown"


def source_key(address: str) -> str:
    """What is counted: the address; for IPv6 its /64 (one host usually holds a whole /64)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if ip.version == 6 and not ip.ipv4_mapped:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip.ipv4_mapped or ip) if ip.version == 6 else str(ip)


@dataclass
class AuditRow:
    action: str
    actor: str
    remote: str
    outcome: str
    detail: str


@dataclass
class _Window:
    start: float  # monotonic
    wall: float  # time.time() at start, for the summary row
    failures: int = 0
    refused: int = 0
    logged: int = 0  # failures written one by one
    key_ids: list[str] = field(default_factory=list)


class FailureThrottle:
    def __init__(self, per_source: int, per_key: int, window_s: float, exempt: frozenset[str] = frozenset(),
                 clock: Any = time.monotonic) -> None:
        self.per_source = per_source
        self.exempt = exempt
        self.per_key = per_key
        self.window_s = window_s
        self._clock = clock
        self._lock = threading.Lock()
        self._sources: dict[str, _Window] = {}
        self._keys: dict[str, _Window] = {}
        self._rows: list[AuditRow] = []
        self._budget = _Window(clock(), time.time())  # first-failure rows of all sources this window
        self._last_sweep = clock()

    @classmethod
    def from_settings(cls, settings: Any) -> FailureThrottle:
        return cls(settings.auth_fail_per_source, settings.auth_fail_per_key, settings.auth_fail_window_s,
                   frozenset(settings.auth_proxy_trusted))

    # -- the two questions ----------------------------------------------------------------------------
    def refused(self, source: str) -> int | None:
        """Retry-After (seconds) when ``source`` is over its limit: answer 429, check nothing."""
        with self._lock:
            now = self._clock()
            self._sweep(now)
            window = self._sources.get(source_key(source))
            if window is None or source in self.exempt or window.failures < self.per_source or now - window.start >= self.window_s:
                return None
            window.refused += 1
            return self._retry_after(window, now)

    def failed(self, source: str, key_id: str | None, what: str) -> int | None:
        """Count a failed key or sign-in (``what``: the audit action). Retry-After when this failure
        is answered 429 rather than 401 (its key id is over its limit)."""
        with self._lock:
            now = self._clock()
            self._sweep(now)
            kid = key_id or "unknown"
            window = self._window(self._sources, source_key(source), now)
            if window is not None:
                window.failures += 1
                if len(window.key_ids) < 5 and kid not in window.key_ids:
                    window.key_ids.append(kid)
                if window.failures == 1:
                    self._first_failure(window, what, kid, source, now)
                if window.failures == self.per_source and source not in self.exempt:
                    self._rows.append(AuditRow("auth.limit", kid, source, "limited",
                                               f"{window.failures} failed keys or sign-ins from this address in "
                                               f"{self.window_s:g} s: refused with 429 until the window ends"))
            if key_id is None:
                return None
            key_window = self._window(self._keys, key_id, now)
            if key_window is None:
                return None
            key_window.failures += 1
            if key_window.failures == self.per_key + 1:
                key_window.logged += 1
                self._rows.append(AuditRow("auth.limit", key_id, source, "limited",
                                           f"{self.per_key} failed attempts named key {key_id} in {self.window_s:g} s: "
                                           "wrong secrets for it get 429 until the window ends (the key itself works)"))
            if key_window.failures > self.per_key:
                key_window.refused += 1
                return self._retry_after(key_window, now)
            return None

    def take_rows(self) -> list[AuditRow]:
        """Audit rows due (the caller writes them, off the event loop)."""
        if not self._rows:
            return []
        with self._lock:
            rows, self._rows = self._rows, []
            return rows

    # -- internals --------------------------------------------------------------------------------------
    def _retry_after(self, window: _Window, now: float) -> int:
        return max(1, math.ceil(window.start + self.window_s - now))

    def _window(self, table: dict[str, _Window], name: str, now: float) -> _Window | None:
        window = table.get(name)
        if window is not None and now - window.start >= self.window_s:
            self._close(name, window, table is self._sources)
            window = None
        if window is None:
            if len(table) >= MAX_TRACKED:
                return None  # counted only in the summary of untracked failures below
            window = table[name] = _Window(now, time.time())
        return window

    def _first_failure(self, window: _Window, what: str, kid: str, source: str, now: float) -> None:
        if now - self._budget.start >= self.window_s:
            self._close_budget()
            self._budget = _Window(now, time.time())
        if self._budget.logged >= MAX_ROWS_PER_WINDOW:
            self._budget.failures += 1  # this address's first failure is in the window summary only
            return
        self._budget.logged += 1
        window.logged += 1
        self._rows.append(AuditRow(what, kid, source, "denied",
                                   "first failure from this address in a window; the next ones are counted and "
                                   "logged together when the window ends"))

    def _close(self, name: str, window: _Window, is_source: bool) -> None:
        unlogged = window.failures + window.refused - window.logged
        if is_source and unlogged > 0:
            started = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(window.wall))
            self._rows.append(AuditRow("auth.failures", window.key_ids[0] if window.key_ids else "unknown", name,
                                       "limited" if window.refused else "denied",
                                       f"{window.failures} failed keys or sign-ins and {window.refused} refused with "
                                       f"429 from {name} in the {self.window_s:g} s from {started} UTC; key ids "
                                       f"named: {', '.join(window.key_ids)}"))

    def _close_budget(self) -> None:
        if self._budget.failures:
            started = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(self._budget.wall))
            self._rows.append(AuditRow("auth.failures", "unknown", "", "denied",
                                       f"{self._budget.failures} more addresses failed in the {self.window_s:g} s "
                                       f"from {started} UTC, past the {MAX_ROWS_PER_WINDOW} logged one by one"))

    def _sweep(self, now: float) -> None:
        """Close ended windows (writing their summaries), at most once a second."""
        if now - self._last_sweep < SWEEP_EVERY_S:
            return
        self._last_sweep = now
        for table, is_source in ((self._sources, True), (self._keys, False)):
            for name in [n for n, w in table.items() if now - w.start >= self.window_s]:
                self._close(name, table.pop(name), is_source)
        if now - self._budget.start >= self.window_s:
            self._close_budget()
            self._budget = _Window(now, time.time())


_THROTTLES: dict[int, FailureThrottle] = {}
_LOCK = threading.Lock()


def throttle_for(store: Any, settings: Any) -> FailureThrottle:
    """One throttle per store in a process: failures on the OTLP ports count on the UI port too."""
    with _LOCK:
        found = _THROTTLES.get(id(store))
        if found is None:
            found = _THROTTLES[id(store)] = FailureThrottle.from_settings(settings)
        return found


def write_rows(store: Any, rows: list[AuditRow]) -> None:
    from tracelake.auth import audit

    for row in rows:
        audit.record(store, actor=row.actor, role="", action=row.action, remote=row.remote, outcome=row.outcome,
                     detail=row.detail)
