"""Fixtures: one OTLP receiver and one autotrace() per session, a fresh fake OpenAI per test.

OTel lets a process set its global TracerProvider once, so the provider lives for the whole
session and the receiver is cleared before each test. Tests that need a process of their own
(the one-line setup, an app's own provider, env configuration) run a script in a subprocess.
"""
from __future__ import annotations

from typing import Callable, Iterator

import pytest

import openai
from fake_openai import FakeOpenAI
from otlp_receiver import OTLPReceiver, SpanSet

import tracelake
from tracelake.sdk import _config


@pytest.fixture(scope="session")
def receiver() -> Iterator[OTLPReceiver]:
    with OTLPReceiver() as rx:
        tracelake.autotrace(endpoint=rx.endpoint, service_name="sdk-tests")
        yield rx
        tracelake.shutdown()


@pytest.fixture
def collect(receiver: OTLPReceiver) -> Iterator[Callable[[], SpanSet]]:
    """Call it after the code under test: flushes the SDK and returns what reached the receiver."""
    settings = _config.settings()
    receiver.clear()

    def spans() -> SpanSet:
        assert tracelake.sdk.flush(), "flush timed out"
        return SpanSet(receiver.spans)

    yield spans
    _config.restore(settings)  # tests may change content settings through autotrace()


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
def client(server: FakeOpenAI) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="test-key", max_retries=0)


@pytest.fixture
def aclient(server: FakeOpenAI) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=server.base_url, api_key="test-key", max_retries=0)

