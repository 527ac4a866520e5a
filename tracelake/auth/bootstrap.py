"""At start: decide whether auth is on, make sure an admin key exists, and say so loudly.

* ``auth`` True/False is obeyed; unset, it is on exactly when ``host`` is not a loopback address,
  so a server reachable from the network never starts open unless ``--no-auth`` is explicit.
* First start with auth and no admin key: ``TRACELAKE_ADMIN_KEY`` is registered if set, else a
  new admin key is generated and printed once to stdout (never to the log); only its hash is kept.
"""
from __future__ import annotations

import ipaddress
import logging
import threading
from typing import Any

from tracelake.auth import audit
from tracelake.auth.keys import KeyRegistry
from tracelake.auth.roles import ALL_PROJECTS, Role
from tracelake.store.base import Store

log = logging.getLogger(__name__)

_REGISTRIES: dict[int, KeyRegistry] = {}
_LOCK = threading.Lock()


def is_loopback(host: str) -> bool:
    if host.strip().lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def auth_enabled(settings: Any) -> bool:
    if settings.auth is not None:
        return bool(settings.auth)
    return not is_loopback(settings.host)


def registry_for(store: Store, ttl_s: float = 2.0) -> KeyRegistry:
    """One registry (one cache) per store in a process: a revoke here applies to every port at once."""
    with _LOCK:
        registry = _REGISTRIES.get(id(store))
        if registry is None or registry.store is not store:
            registry = _REGISTRIES[id(store)] = KeyRegistry(store, ttl_s)
        return registry


def start(settings: Any, store: Store) -> tuple[KeyRegistry | None, list[str]]:
    """(registry or None when auth is off, lines for the start banner)."""
    if not auth_enabled(settings):
        if settings.auth is False and not is_loopback(settings.host):
            return None, [f"  WARNING     auth is OFF on {settings.host} (--no-auth): anyone who reaches these "
                          "ports reads every trace and writes spans"]
        return None, ["  auth        off (loopback only; --auth to require keys)"]
    registry = registry_for(store, settings.key_cache_ttl_s)
    lines = ["  auth        on: a key is required on every port (docs/security.md)"]
    env_key = settings.admin_key.get_secret_value() if settings.admin_key else ""
    if env_key:
        record = registry.register(env_key, ALL_PROJECTS, Role.ADMIN, "admin (TRACELAKE_ADMIN_KEY)", "bootstrap")
        lines.append(f"  admin key   from TRACELAKE_ADMIN_KEY (id {record.key_id})")
    elif not registry.any_active_admin():
        record, key = registry.create(ALL_PROJECTS, Role.ADMIN, "first admin", "bootstrap")
        audit.record(store, actor="bootstrap", role="system", action="key.create", project=ALL_PROJECTS,
                     target=record.key_id, detail="first admin key")
        lines.append(f"  admin key   {key}")
        lines.append("              ^ shown once, stored only as a hash: keep it now "
                     "(tracelake keys create/revoke with TRACELAKE_KEY set to it)")
    return registry, lines
