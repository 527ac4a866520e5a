"""Fixtures for archiver tests: AWS test credentials, moto's S3 server and a bucket (tests/moto_s3.py)."""
from __future__ import annotations

from moto_s3 import aws_env, moto_endpoint, s3_bucket  # noqa: F401 - fixtures
