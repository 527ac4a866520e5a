"""autotrace() in processes of its own: the one line, env configuration, an app's own provider."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from server_process import free_port


def run(tmp_path: Path, code: str, name: str = "app", env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    script = tmp_path / f"{name}.py"
    script.write_text(textwrap.dedent(code))
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TRACELAKE_"))}
    clean["PYTHONPATH"] = os.pathsep.join([str(tmp_path), clean.get("PYTHONPATH", "")])
    result = subprocess.run(
        [sys.executable, str(script)], env={**clean, **(env or {})}, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result


def from_service(spans, service):
    return [s for s in spans if s.resource.get("service.name") == service]


def test_the_one_line(tmp_path, receiver, server, collect):
    result = run(
        tmp_path,
        f"""
        import tracelake; tracelake.autotrace()

        import openai
        from langchain_openai import ChatOpenAI

        client = openai.OpenAI(base_url="{server.base_url}", api_key="k")
        print(client.chat.completions.create(model="gpt-4o-mini", messages=[{{"role": "user", "content": "plain"}}]).choices[0].message.content)
        print(ChatOpenAI(model="gpt-4o-mini", base_url="{server.base_url}", api_key="k").invoke("via langchain").content)
        """,
        name="one_line",
        env={"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint},
    )
    assert result.stdout.split("\n")[:2] == ["echo: plain", "echo: via langchain"]
    spans = from_service(collect(), "one_line")  # named after the script; flushed at exit
    assert sorted(s.name for s in spans) == ["ChatOpenAI", "chat gpt-4o-mini", "chat gpt-4o-mini"]
    chat_model = next(s for s in spans if s.name == "ChatOpenAI")
    under = [s for s in spans if s.parent_id == chat_model.span_id]
    assert [s.name for s in under] == ["chat gpt-4o-mini"]
    assert len([s for s in spans if s.parent_id is None]) == 2


def test_configuration_from_environment(tmp_path, receiver, server, collect):
    (tmp_path / "masking.py").write_text("def redact(key, value):\n    return value.replace('4111', '####')\n")
    run(
        tmp_path,
        f"""
        import tracelake
        tracelake.autotrace()
        tracelake.autotrace()  # twice is harmless

        with tracelake.span("pay", input="card 4111"):
            pass
        """,
        env={
            "TRACELAKE_ENDPOINT": receiver.endpoint,
            "TRACELAKE_API_KEY": "tl-secret",
            "TRACELAKE_PROJECT": "billing",
            "OTEL_SERVICE_NAME": "payments",
            "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=test",
            "TRACELAKE_REDACT": "masking:redact",
        },
    )
    [span] = from_service(collect(), "payments")
    assert span.attributes["input.value"] == "card ####"
    assert span.resource["tracelake.project"] == "billing"
    assert span.resource["deployment.environment"] == "test"
    assert span.request_headers["authorization"] == "Bearer tl-secret"
    assert span.request_headers["x-tracelake-project"] == "billing"


def test_capture_off_from_environment(tmp_path, receiver, server, collect):
    run(
        tmp_path,
        f"""
        import tracelake, openai
        tracelake.autotrace(service_name="quiet")
        openai.OpenAI(base_url="{server.base_url}", api_key="k").chat.completions.create(
            model="gpt-4o-mini", messages=[{{"role": "user", "content": "private"}}])
        """,
        env={"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "TRACELAKE_CAPTURE_CONTENT": "false"},
    )
    [span] = from_service(collect(), "quiet")
    assert "gen_ai.input.messages" not in span.attributes and "gen_ai.output.messages" not in span.attributes
    assert span.attributes["gen_ai.usage.input_tokens"] == 1


def test_joins_the_apps_own_tracer_provider(tmp_path, receiver, server, collect):
    result = run(
        tmp_path,
        f"""
        import json
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        mine = InMemorySpanExporter()
        provider = TracerProvider(resource=Resource.create({{"service.name": "my-app"}}))
        provider.add_span_processor(SimpleSpanProcessor(mine))
        trace.set_tracer_provider(provider)

        import tracelake, openai
        tracelake.autotrace(endpoint="{receiver.endpoint}", service_name="ignored")
        assert trace.get_tracer_provider() is provider  # nothing replaced

        client = openai.OpenAI(base_url="{server.base_url}", api_key="k")
        with trace.get_tracer("app").start_as_current_span("app request"):
            client.chat.completions.create(model="gpt-4o-mini", messages=[{{"role": "user", "content": "hi"}}])
        tracelake.shutdown()
        print(json.dumps(sorted(s.name for s in mine.get_finished_spans())))
        """,
    )
    assert json.loads(result.stdout) == ["app request", "chat gpt-4o-mini"]  # the app's exporter still gets all
    spans = from_service(collect(), "my-app")  # and so does tracelake, under the app's resource
    assert sorted(s.name for s in spans) == ["app request", "chat gpt-4o-mini"]
    chat = next(s for s in spans if s.name == "chat gpt-4o-mini")
    assert chat.parent_id == next(s for s in spans if s.name == "app request").span_id


def test_collector_down_the_app_runs_on(tmp_path, server):
    result = run(
        tmp_path,
        f"""
        import tracelake, openai
        tracelake.autotrace(endpoint="http://127.0.0.1:{free_port()}")
        client = openai.OpenAI(base_url="{server.base_url}", api_key="k")
        for i in range(3):
            print(client.chat.completions.create(model="m", messages=[{{"role": "user", "content": str(i)}}]).choices[0].message.content)
        """,
    )
    assert result.stdout.split() == ["echo:", "0", "echo:", "1", "echo:", "2"]


def test_shutdown_and_disabled_sdk(tmp_path, receiver, server, collect):
    run(
        tmp_path,
        """
        import tracelake
        tracelake.autotrace(service_name="stopping")
        with tracelake.span("before"):
            pass
        tracelake.shutdown()
        tracelake.shutdown()  # harmless
        with tracelake.span("after"):  # no longer exported, and no error
            pass
        """,
        env={"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint},
    )
    run(
        tmp_path,
        """
        import tracelake
        tracelake.autotrace(service_name="disabled")
        with tracelake.span("nothing"):
            pass
        """,
        env={"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_SDK_DISABLED": "true"},
    )
    spans = collect()
    assert [s.name for s in from_service(spans, "stopping")] == ["before"]
    assert from_service(spans, "disabled") == []


def test_works_without_openai_and_langchain(tmp_path, receiver, collect):
    result = run(
        tmp_path,
        """
        import sys

        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("openai", "langchain_core", "langchain_openai", "langgraph"):
                    raise ModuleNotFoundError(name)

        sys.meta_path.insert(0, Block())
        import tracelake
        tracelake.autotrace(service_name="bare")

        @tracelake.trace
        def work(x):
            return x + 1

        print(work(1))
        print(sorted(m for m in sys.modules if m.split(".")[0] in ("openai", "langchain_core")))
        """,
        env={"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint},
    )
    assert result.stdout.split("\n")[:2] == ["2", "[]"]
    assert [s.name for s in from_service(collect(), "bare")] == ["work"]


@pytest.mark.parametrize(
    "env, expected",
    [
        ({}, "http://localhost:4318/v1/traces"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318/"}, "http://c:4318/v1/traces"),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:9/custom"}, "http://c:9/custom"),
        ({"TRACELAKE_ENDPOINT": "https://t.example/v1/traces", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"}, "https://t.example/v1/traces"),
    ],
)
def test_endpoint_resolution(monkeypatch, env, expected):
    from tracelake.sdk._setup import traces_url

    for key in ("TRACELAKE_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert traces_url(None) == expected
