"""The ``tracelake`` console script.

Every command is server-side (typer, rich, the collector's and UI's libraries: the ``server``
extra), while the base install is only the SDK for agent code. In that light install the command
prints one line saying what is missing and how to add it, instead of an ImportError traceback.
"""
from __future__ import annotations

import json
import sys
from importlib import metadata
from typing import Any, NoReturn
from urllib.parse import unquote, urlparse


def main() -> None:
    try:
        from tracelake.cli import main as cli_main
    except ModuleNotFoundError as exc:
        _missing_extra(exc)
    try:
        cli_main()
    except ModuleNotFoundError as exc:  # a command importing a server library only when it runs
        _missing_extra(exc)


def _missing_extra(exc: ModuleNotFoundError) -> NoReturn:
    name = exc.name or ""
    if not name or name.split(".")[0] == "tracelake":
        raise exc  # our own module missing is a bug, not an install to complete: keep the traceback
    command = next((a for a in sys.argv[1:] if not a.startswith("-")), "")
    what = f"`tracelake {command}`" if command else "the tracelake command"
    print(f"error: {what} needs the server dependencies, which this install does not have (no module named "
          f"{name!r}); add them with: {install_hint()}", file=sys.stderr)
    raise SystemExit(1)


def install_hint() -> str:
    """The pip command adding the server extra to this install, from where it was installed (PEP 610's
    direct_url.json): the package is not on an index, so plain ``tracelake[server]`` would not resolve."""
    try:
        origin = json.loads(metadata.distribution("tracelake").read_text("direct_url.json") or "null")
    except (metadata.PackageNotFoundError, ValueError):
        origin = None
    return hint_for(origin)


def hint_for(origin: Any) -> str:
    """The command for an install whose direct_url.json holds ``origin`` (None: from an index)."""
    if not isinstance(origin, dict) or not origin.get("url"):
        return 'pip install "tracelake[server]"'
    url = str(origin["url"])
    vcs = origin.get("vcs_info")
    if isinstance(vcs, dict):
        if url.startswith("file:///"):  # a PEP 508 VCS URL needs a host: git+file:///… is refused, …//localhost/… works
            url = "file://localhost/" + url.removeprefix("file:///")
        revision = vcs.get("requested_revision")
        url = f"{vcs.get('vcs', 'git')}+{url}" + (f"@{revision}" if revision else "")
    if origin.get("dir_info", {}).get("editable") and url.startswith("file://"):
        return f'pip install -e "{unquote(urlparse(url).path)}[server]"'
    return f'pip install "tracelake[server] @ {url}"'


if __name__ == "__main__":  # pragma: no cover
    main()
