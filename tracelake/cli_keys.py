"""``tracelake keys create|list|revoke``: key management through the running server's API.

The server is ``TRACELAKE_URL`` (default http://127.0.0.1:4380), the caller's key
``TRACELAKE_KEY`` (an admin key, or an ops key for its own project). A new key is printed on the
last line of ``create`` and never again.
"""
from __future__ import annotations

from typing import Annotated, Any

import typer

keys_app = typer.Typer(add_completion=False, no_args_is_help=True, help="Create, list and revoke API keys.")

Url = Annotated[str, typer.Option(envvar="TRACELAKE_URL", help="The running server's UI/API address")]


def _call(method: str, url: str, path: str, **kwargs: Any) -> Any:
    from tracelake import server_client

    if not server_client.auth_headers():
        typer.echo("error: set TRACELAKE_KEY to an admin key (or an ops key of the project)", err=True)
        raise typer.Exit(2)
    return server_client.call(method, url, path, timeout=30, **kwargs).json()


@keys_app.command()
def create(project: Annotated[str, typer.Option(help="The project the key acts on (ignored for admin)")] = "default",
           role: Annotated[str, typer.Option(help="ingest, viewer, engineer, ops or admin")] = "ingest",
           name: Annotated[str, typer.Option(help="A label shown in key lists")] = "",
           url: Url = "http://127.0.0.1:4380") -> None:
    """Create a key; it is printed once, on the last line."""
    doc = _call("POST", url, "/api/keys", json={"project": project, "role": role, "name": name})
    typer.echo(f"key id {doc['key_id']}: role {doc['role']}, project {doc['project']} (shown once, stored hashed)")
    typer.echo(doc["key"])


@keys_app.command("list")
def list_keys(url: Url = "http://127.0.0.1:4380",
              json_output: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")] = False) -> None:
    """Keys without their secrets."""
    from rich.console import Console
    from rich.table import Table

    doc = _call("GET", url, "/api/keys")
    if json_output:
        import json

        typer.echo(json.dumps(doc["keys"], indent=1))
        return
    from tracelake.terminal import safe_cell

    table = Table("key id", "role", "project", "name", "created", "by", "revoked")
    for k in doc["keys"]:
        table.add_row(*(safe_cell(k[f]) for f in ("key_id", "role", "project", "name", "created_at", "created_by")),
                      "yes" if k["revoked"] else "")
    Console().print(table)


@keys_app.command()
def revoke(key_id: Annotated[str, typer.Argument(help="The key id (from `tracelake keys list`)")],
           url: Url = "http://127.0.0.1:4380") -> None:
    """Revoke a key: refused at once by this server, by other processes within key_cache_ttl_s."""
    _call("DELETE", url, f"/api/keys/{key_id}")
    typer.echo(f"revoked {key_id}")
