"""S3 fixtures shared by test folders: dummy AWS credentials, moto's standalone server on
127.0.0.1 (a real S3 HTTP endpoint, no in-process patching), a fresh bucket per test.

A folder's conftest imports them: ``from moto_s3 import aws_env, moto_endpoint, s3_bucket``.
"""
from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from server_process import free_port


@pytest.fixture(scope="session")
def aws_env() -> Iterator[dict[str, str]]:
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


_buckets = iter(range(1_000_000))


@pytest.fixture()
def s3_bucket(moto_endpoint: str) -> str:
    """A fresh bucket per test."""
    import boto3

    name = f"tl-test-{os.getpid()}-{next(_buckets)}"
    boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1").create_bucket(Bucket=name)
    return name
