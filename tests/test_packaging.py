"""One distribution whose top-level folders import as tracelake.*; agent code needs no server parts.

The end-to-end half walks what the README and docs/security.md tell a new user, in fresh virtual
environments: build the wheel and install its base (SDK only) as an agent's environment; install the
server with the README's own command; start `tracelake server`, send a trace with the SDK and find it
in the list; then the auth quick start (admin key from the banner, `tracelake keys create`, an ingest
key sending, a viewer signing in). Those tests start the real command from the fresh environment,
so they are listed in OWN_SERVERS (tests/test_server_fixtures.py). Seconds per step are printed at
the end of the module (`-s` shows them).
"""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

import httpx
import pytest

from server_process import ServerProcess, start_server_command, wait_until

ROOT = Path(__file__).resolve().parents[1]
# The server's heaviest dependencies, by import name: none may be importable in the base install.
HEAVY = ("chdb", "fastapi", "grpc", "pyarrow", "clickhouse_connect", "uvicorn", "boto3", "typer", "deltalake")
# What an agent runs: the README's two lines plus one span of its own (exported at interpreter exit).
AGENT = "import sys, tracelake\ntracelake.autotrace()\nwith tracelake.span(sys.argv[1]):\n    pass\n"
STEPS: dict[str, float] = {}


@contextmanager
def step(name: str) -> Iterator[None]:
    began = time.monotonic()
    yield
    STEPS[name] = round(time.monotonic() - began, 1)


@pytest.fixture(scope="module", autouse=True)
def report_steps() -> Iterator[None]:
    yield
    print("\nseconds per step:", *(f"  {s:6.1f}  {name}" for name, s in STEPS.items()), sep="\n")


def test_folders_import_as_namespaced_packages():
    import tracelake.archiver
    import tracelake.collector
    import tracelake.sdk
    import tracelake.store
    import tracelake.ui

    for module, folder in [(tracelake.sdk, "sdk"), (tracelake.collector, "collector"), (tracelake.ui, "ui"),
                           (tracelake.archiver, "archiver"), (tracelake.store, "tracelake/store")]:
        assert Path(module.__file__).resolve().parent == ROOT / folder


def test_agent_code_imports_no_server_dependency():
    code = ("import sys, tracelake; tracelake.autotrace; import tracelake.sdk; "
            "heavy = {'chdb', 'fastapi', 'grpc', 'clickhouse_connect', 'pyarrow', 'boto3', 'uvicorn'} & set(sys.modules); "
            "assert not heavy, heavy")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


# --- the wheel and fresh environments ---------------------------------------------------------

def user_env(venv: Path | None = None, **extra: str) -> dict[str, str]:
    """A user's shell with ``venv`` activated: nothing of this test run's Python path, venv, tracelake
    or OpenTelemetry settings leaks in."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")
           and not k.startswith(("TRACELAKE_", "OTEL_", "PYTEST_"))}
    if venv is not None:
        env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        env["VIRTUAL_ENV"] = str(venv)
    return {**env, "PYTHONUNBUFFERED": "1", **extra}


def run(argv: list[str], env: dict[str, str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{shlex.join(argv)} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built once from a copy of the sources: a build in place reuses build/, which can
    still hold files deleted from the sources since."""
    root = tmp_path_factory.mktemp("wheel")
    src = shutil.copytree(ROOT, root / "src", ignore=shutil.ignore_patterns(
        ".venv", ".git", "build", "dist", "*.egg-info", "__pycache__", ".tracelake", ".pytest_cache", "artifacts"))
    with step("build the wheel (pip wheel --no-deps --no-build-isolation)"):
        run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(root / "dist"),
             str(src)], user_env(), root, timeout=300)
    [built] = (root / "dist").glob("tracelake-*.whl")
    return built


@pytest.fixture(scope="module")
def agent_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A clean virtual environment (no system site-packages) with the wheel's base install, as in an
    agent's environment. It has no pip of its own: this run's pip installs into it (`pip --python`),
    which saves ensurepip's ~7 s and still resolves the base dependencies from the index."""
    venv = tmp_path_factory.mktemp("agent") / "venv"
    with step("agent venv: python -m venv --without-pip"):
        run([sys.executable, "-m", "venv", "--without-pip", str(venv)], user_env(), venv.parent)
    with step("agent venv: install the wheel with its base dependencies"):
        run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q", str(wheel)],
            user_env(), venv.parent, timeout=300)
    yield venv
    shutil.rmtree(venv, ignore_errors=True)


@pytest.fixture(scope="module")
def server_venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The README's set-up command, run as written but for the venv's place (a temporary one, not the
    checkout's .venv) and the server start, which the tests make on free ports. Shared by both quick
    starts: the install is most of this module's time (63-72 s at load 3-5 on 2 cores, warm pip cache;
    1.2 GB unpacked, removed afterwards). Installing the built wheel with [server] instead saved only
    ~10 s (no ensurepip, no isolated build) and would not check the README's command."""
    blocks = re.findall(r"```sh\n(.*?)\n```", (ROOT / "README.md").read_text(), re.S)
    command = next(b for b in blocks if "tracelake server" in b)
    *install, start = command.split(" && ")
    assert start == "tracelake server" and any(p.startswith("pip install") for p in install), command
    venv = tmp_path_factory.mktemp("server") / "venv"
    with step("server venv: the README's " + " && ".join(install)):
        run(["bash", "-c", " && ".join(install).replace(".venv", shlex.quote(str(venv)))], user_env(), ROOT, timeout=600)
    assert "include-system-site-packages = false" in (venv / "pyvenv.cfg").read_text()
    yield venv
    shutil.rmtree(venv, ignore_errors=True)


def start_quickstart_server(venv: Path, workdir: Path, *flags: str) -> ServerProcess:
    """`tracelake server` as a user types it in an empty folder (data in ./.tracelake), on free ports:
    the README's 4317/4318/4380 may be taken on a shared machine."""
    workdir.mkdir()
    ports = ["--otlp-grpc-port", "0", "--otlp-http-port", "0", "--ui-port", "0"]
    return start_server_command([str(venv / "bin" / "tracelake"), "server", *ports, *flags], workdir,
                                workdir / ".tracelake", user_env(venv))


def send_with_sdk(agent: Path, cwd: Path, name: str, **otel: str) -> None:
    """The agent's two lines and one span named ``name``, configured by OTEL_* variables only."""
    run([str(agent / "bin" / "python"), "-c", AGENT, name], user_env(agent, **otel), cwd)


def listed(ui_url: str, name: str, client: httpx.Client | None = None) -> dict | None:
    """The row of /api/traces whose root span is ``name``, if listed."""
    rows = (client or httpx).get(f"{ui_url}/api/traces", timeout=30).json()["traces"]
    return next((row for row in rows if row["name"] == name), None)


# --- the tests --------------------------------------------------------------------------------

def test_the_wheel_carries_every_file_of_the_product_folders(wheel: Path):
    names = set(zipfile.ZipFile(wheel).namelist())
    # Every file of the folders, at its import path: a package missing from pyproject's list or an
    # asset outside its package-data globs would be absent here though it works in the checkout.
    mapped = {"tracelake": "tracelake", "sdk": "tracelake/sdk", "collector": "tracelake/collector",
              "archiver": "tracelake/archiver", "ui": "tracelake/ui"}
    expected = {f"{to}/{path.relative_to(ROOT / folder).as_posix()}" for folder, to in mapped.items()
                for path in (ROOT / folder).rglob("*") if path.is_file()
                and not any(part == "__pycache__" or part.startswith(".") for part in path.relative_to(ROOT).parts)}
    assert not expected - names, f"missing from the wheel: {sorted(expected - names)}"
    for data in ("tracelake/ui/static/swagger/swagger-ui-bundle.js", "tracelake/ui/static/swagger/swagger-ui.css",
                 "tracelake/ui/static/htmx.min.js", "tracelake/ui/templates/traces.html",
                 "tracelake/auth/sql_functions.txt", "tracelake/store/model_prices.json", "tracelake/store/otlp_flat.proto"):
        assert data in names
    assert {n.split("/")[0] for n in names} == {"tracelake", "tracelake-0.1.0.dist-info"}  # no tests, no stray top-level
    built = zipfile.ZipFile(wheel)
    requires = [line.split(": ", 1)[1] for line in built.read("tracelake-0.1.0.dist-info/METADATA").decode().splitlines()
                if line.startswith("Requires-Dist:")]
    # The base requirements are the SDK's alone, as pyproject declares them (this checkout's install).
    declared = [r for r in metadata.requires("tracelake") or [] if "extra ==" not in r]
    base = [r for r in requires if "extra ==" not in r]
    assert sorted(base) == sorted(declared) and all(r.startswith("opentelemetry-") for r in base), base
    assert "tracelake = tracelake.console:main" in built.read("tracelake-0.1.0.dist-info/entry_points.txt").decode()


def test_the_base_install_is_the_sdk_alone_and_the_command_says_what_to_add(agent_venv: Path, wheel: Path, tmp_path: Path):
    probe = ("import importlib.util, json, sys, tracelake\n"
             "tracelake.autotrace(service_name='probe')\n"
             f"heavy = {HEAVY!r}\n"
             "print(json.dumps([tracelake.__file__, [m for m in heavy if importlib.util.find_spec(m)],"
             " sorted(set(heavy) & set(sys.modules))]))\n")
    with step("agent venv: import tracelake; autotrace(); look for server modules"):
        out = run([str(agent_venv / "bin" / "python"), "-c", probe], user_env(agent_venv), tmp_path)
    where, installed, loaded = json.loads(out.stdout.splitlines()[-1])
    assert Path(where).is_relative_to(agent_venv) and installed == [] and loaded == []
    with step("agent venv: `tracelake server` without the server extra"):
        refused = subprocess.run([str(agent_venv / "bin" / "tracelake"), "server"], env=user_env(agent_venv),
                                 cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1 and refused.stdout == "" and "Traceback" not in refused.stderr, refused.stderr
    [line] = refused.stderr.strip().splitlines()
    assert line.startswith("error: `tracelake server` needs the server dependencies") and "'typer'" in line
    # The package is on no index, so the hint names where this install came from: the wheel.
    assert line.endswith(f'pip install "tracelake[server] @ {wheel.as_uri()}"'), line


@pytest.mark.parametrize("origin,command", [
    (None, 'pip install "tracelake[server]"'),
    ({"url": "file:///w/dist/tracelake-0.1.0-py3-none-any.whl", "archive_info": {}},
     'pip install "tracelake[server] @ file:///w/dist/tracelake-0.1.0-py3-none-any.whl"'),
    ({"url": "file:///src/tracelake", "dir_info": {}}, 'pip install "tracelake[server] @ file:///src/tracelake"'),
    ({"url": "file:///src/my%20tracelake", "dir_info": {"editable": True}}, 'pip install -e "/src/my tracelake[server]"'),
    ({"url": "https://git.example/tl.git", "vcs_info": {"vcs": "git", "commit_id": "ab12", "requested_revision": "v1"}},
     'pip install "tracelake[server] @ git+https://git.example/tl.git@v1"'),
    # pip refuses git+file:/// in a requirement ("Invalid requirement"); with a host it clones the same repository
    ({"url": "file:///src/tl", "vcs_info": {"vcs": "git", "commit_id": "ab12"}},
     'pip install "tracelake[server] @ git+file://localhost/src/tl"'),
])
def test_the_hint_adds_the_extra_from_where_tracelake_came(origin: dict | None, command: str):
    from tracelake.console import hint_for

    assert hint_for(origin) == command


def test_readme_quick_start(server_venv: Path, agent_venv: Path, tmp_path: Path):
    with step("quick start: `tracelake server` until it prints where it listens (first start, empty store)"):
        server = start_quickstart_server(server_venv, tmp_path / "quickstart")
    with server:
        assert (tmp_path / "quickstart" / ".tracelake").is_dir()  # "data in ./.tracelake"
        name = f"quickstart-{uuid.uuid4().hex[:8]}"
        with step("quick start: an agent sends a span with the SDK (OTEL_EXPORTER_OTLP_ENDPOINT)"):
            send_with_sdk(agent_venv, tmp_path, name, OTEL_EXPORTER_OTLP_ENDPOINT=server.otlp_http_url)
        with step("quick start: the trace is in /api/traces"):
            wait_until(lambda: listed(server.ui_url, name), f"{name} is in /api/traces", timeout=60, every=0.1)
        page = httpx.get(f"{server.ui_url}/traces", timeout=30)
        assert page.status_code == 200 and name in page.text
        assert httpx.get(f"{server.ui_url}/api/docs", timeout=30).status_code == 200  # "OpenAPI docs at /api/docs"


def test_security_quick_start(server_venv: Path, agent_venv: Path, tmp_path: Path):
    """docs/security.md's steps, in order: the first start with --auth prints the admin key once; the
    admin makes an ingest and a viewer key with `tracelake keys create`; the agent sends with the
    ingest key in OTEL_EXPORTER_OTLP_HEADERS; the viewer signs in with the form and sees the trace."""
    with step("auth: `tracelake server --auth` (first start prints the admin key)"):
        server = start_quickstart_server(server_venv, tmp_path / "auth", "--auth")
    with server:
        admin_keys = re.findall(r"admin key\s+(tl_[0-9a-f]{12}_[A-Za-z0-9_-]{43})\s", "".join(server.output))
        assert len(admin_keys) == 1, "the first start prints one admin key"
        cli_env = user_env(server_venv, TRACELAKE_URL=server.ui_url, TRACELAKE_KEY=admin_keys[0])
        keys = {}
        for role, extra in [("ingest", []), ("viewer", ["--name", "support team"])]:
            with step(f"auth: tracelake keys create --project shop --role {role}"):
                made = run([str(server_venv / "bin" / "tracelake"), "keys", "create", "--project", "shop", "--role", role,
                            *extra], cli_env, tmp_path)
            keys[role] = made.stdout.strip().splitlines()[-1]  # "the key is the last line, shown once"
            assert re.fullmatch(r"tl_[0-9a-f]{12}_[A-Za-z0-9_-]{43}", keys[role])

        name = f"secured-{uuid.uuid4().hex[:8]}"
        with step("auth: an agent sends with the ingest key"):
            send_with_sdk(agent_venv, tmp_path, name, OTEL_EXPORTER_OTLP_ENDPOINT=server.otlp_http_url,
                          OTEL_EXPORTER_OTLP_HEADERS=f"authorization=Bearer {keys['ingest']}")

        browser = httpx.Client(base_url=server.ui_url, timeout=30, follow_redirects=False)
        assert browser.get("/traces").headers["location"].startswith("/login")  # no session: the sign-in form
        form = browser.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
        signed_in = browser.post("/login", data={"key": keys["viewer"], "csrf_token": token})
        assert signed_in.status_code == 303 and signed_in.headers["location"] == "/traces"
        with step("auth: the viewer sees the trace"):
            wait_until(lambda: listed(server.ui_url, name, browser), f"{name} is listed for the viewer", every=0.1)
        assert listed(server.ui_url, name, browser)["project"] == "shop"  # the ingest key's project
        page = browser.get("/traces")
        assert page.status_code == 200 and name in page.text

        # A viewer is no admin: the audit log and new keys are refused (with a valid CSRF token, so the
        # refusal is the role's).
        csrf = re.search(r'name="csrf-token" content="([^"]+)"', page.text).group(1)
        assert browser.get("/audit").status_code == 403
        made = browser.post("/api/keys", json={"project": "shop", "role": "admin"}, headers={"X-CSRF-Token": csrf})
        assert made.status_code == 403
