"""Fixtures for attachment tests: media samples, a moto S3 server, collector stacks in subprocesses."""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from att_helpers import Stack
from server_process import free_port


@pytest.fixture(scope="session")
def aws_env() -> dict[str, str]:
    """Dummy credentials for moto, set for this process and inherited by subprocesses."""
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield env
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def moto_endpoint(aws_env: dict[str, str]) -> Iterator[str]:
    """A real S3 HTTP endpoint on 127.0.0.1 (moto's standalone server)."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


_bucket_counter = iter(range(1_000_000))


@pytest.fixture()
def s3_bucket(moto_endpoint: str) -> str:
    """A fresh bucket per test."""
    import boto3

    name = f"tl-test-{os.getpid()}-{next(_bucket_counter)}"
    boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1").create_bucket(Bucket=name)
    return name


@pytest.fixture()
def start_stack(tmp_path: Path) -> Iterator[Any]:
    """Call with TRACELAKE_* settings as keyword arguments (lower-case names)."""
    stacks: list[Stack] = []

    def start(**settings: Any) -> Stack:
        env = {f"TRACELAKE_{k.upper()}": str(v) for k, v in settings.items()}
        stack = Stack(tmp_path / f"data{len(stacks)}", env)
        stacks.append(stack)
        return stack

    yield start
    for stack in stacks:
        stack.stop()
