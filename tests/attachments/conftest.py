"""Fixtures for attachment tests: media samples, a moto S3 server, collector stacks in subprocesses."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from att_helpers import Stack
from moto_s3 import aws_env, moto_endpoint, s3_bucket  # noqa: F401 - fixtures


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
