"""A small OpenAI-compatible HTTP server for tests and benchmarks.

It serves ``/v1/chat/completions``, ``/v1/responses`` and ``/v1/embeddings`` (streamed and
not) on 127.0.0.1 at a free port, records every request it receives, and answers with
scripted :class:`Reply` objects (or an echo of the last user text when none is queued).

    from fake_openai import FakeOpenAI, Reply, ToolCall

    with FakeOpenAI() as server:
        server.enqueue(Reply(tool_calls=[ToolCall("get_weather", {"city": "Paris"})]))
        client = openai.OpenAI(base_url=server.base_url, api_key="test")
        ...
        assert server.requests[-1].body["model"] == "gpt-4o-mini"

Import it with ``tests/`` on ``sys.path`` (``tests/sdk/conftest.py`` does that), or run it as a
separate process: ``python tests/fake_openai.py --latency 0.001`` prints the base URL.

Only the standard library is used, so it starts in milliseconds and needs no extras.
"""
from __future__ import annotations

import argparse
import base64
import collections
import json
import struct
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator, Sequence

__all__ = ["FakeOpenAI", "Reply", "ToolCall", "Usage", "RecordedRequest"]


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    id: str = ""


@dataclass(frozen=True)
class Usage:
    input_tokens: int
    output_tokens: int
    cached_tokens: int = 0
    reasoning_tokens: int = 0


@dataclass(frozen=True)
class Reply:
    """One scripted answer. Leave ``text`` as None to echo the last user text."""

    text: str | None = None
    tool_calls: Sequence[ToolCall] = ()
    reasoning: str | None = None
    finish_reason: str | None = None
    usage: Usage | None = None
    status: int = 200
    error_message: str = "fake error"
    model: str | None = None
    # Pause before each streamed event, to let tests act mid-stream.
    chunk_delay: float = 0.0


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


class FakeOpenAI:
    """Threaded OpenAI-compatible server; use as a context manager or call start()/stop()."""

    def __init__(self, *, latency: float = 0.0, host: str = "127.0.0.1", port: int = 0) -> None:
        self.latency = latency
        self.requests: list[RecordedRequest] = []
        self._replies: collections.deque[Reply] = collections.deque()
        self._lock = threading.Lock()
        self._ids = 0
        self._httpd = _Server((host, port), _handler_for(self))
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------
    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> FakeOpenAI:
        if self._thread is None:
            # A short poll interval keeps stop() fast; tests start and stop many servers.
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-openai", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- scripting -------------------------------------------------------------------
    def enqueue(self, *replies: Reply) -> None:
        """Queue replies; each request takes the next one (FIFO)."""
        with self._lock:
            self._replies.extend(replies)

    def clear(self) -> None:
        with self._lock:
            self._replies.clear()
            self.requests.clear()

    def requests_to(self, endpoint: str) -> list[RecordedRequest]:
        """Recorded requests whose path ends with ``endpoint`` (e.g. "/chat/completions")."""
        return [r for r in self.requests if r.path.endswith(endpoint)]

    def _next(self, request: RecordedRequest) -> Reply:
        with self._lock:
            self.requests.append(request)
            return self._replies.popleft() if self._replies else Reply()

    def _new_id(self, prefix: str) -> str:
        with self._lock:
            self._ids += 1
            return f"{prefix}_{self._ids:06d}"


# -- request handling -------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that drop a stream halfway reset the connection; that is expected here.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def _handler_for(server: FakeOpenAI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the real API offers
        disable_nagle_algorithm = True  # headers and body go out as separate writes

        def log_message(self, format: str, *args: Any) -> None:  # quiet test output
            pass

        def do_GET(self) -> None:
            if self.path.rstrip("/").endswith("/models"):
                self._json(200, {"object": "list", "data": [{"id": "gpt-4o-mini", "object": "model"}]})
            else:
                self._json(404, _error("not found", "not_found"))

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = None
            request = RecordedRequest("POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            reply = server._next(request)
            if server.latency:
                time.sleep(server.latency)
            if reply.status >= 400:
                kind = "rate_limit_exceeded" if reply.status == 429 else "server_error"
                self._json(reply.status, _error(reply.error_message, kind))
                return
            body = body if isinstance(body, dict) else {}
            path = self.path.split("?")[0].rstrip("/")
            if path.endswith("/chat/completions"):
                chat = _Chat(server, body, reply)
                self._answer(body, chat.completion, chat.chunks, reply.chunk_delay)
            elif path.endswith("/responses"):
                resp = _Responses(server, body, reply)
                self._answer(body, resp.response, resp.events, reply.chunk_delay)
            elif path.endswith("/embeddings"):
                self._json(200, _embeddings(body, reply))
            else:
                self._json(404, _error(f"no route for {path}", "not_found"))

        def _answer(self, body: dict, whole: Any, events: Any, delay: float) -> None:
            if body.get("stream"):
                self._sse(events(), delay)
            else:
                self._json(200, whole())

        def _json(self, status: int, payload: Any) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.send_header("x-request-id", server._new_id("req"))
            self.end_headers()
            self.wfile.write(data)

        def _sse(self, events: Iterator[bytes], delay: float) -> None:
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            try:
                for event in events:
                    if delay:
                        time.sleep(delay)
                    self.wfile.write(b"%X\r\n%s\r\n" % (len(event), event))
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the client walked away mid-stream

    return Handler


def _error(message: str, kind: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": kind}}


def _words(text: str) -> list[str]:
    """Split text into stream pieces that join back to the same text."""
    pieces = [w + " " for w in text.split(" ")]
    pieces[-1] = pieces[-1][:-1]
    return [p for p in pieces if p]


def _count(text: str) -> int:
    return max(1, len(text.split()))


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and "text" in p)
    return ""


def _usage(reply: Reply, prompt: str, answer: str) -> Usage:
    return reply.usage or Usage(_count(prompt), _count(answer) if answer else 1)


class _Chat:
    """Chat Completions answers built from one Reply."""

    def __init__(self, server: FakeOpenAI, body: dict, reply: Reply) -> None:
        messages = body.get("messages") or []
        users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
        last_user = _text_of(users[-1].get("content")) if users else ""
        self.reply = reply
        self.model = reply.model or body.get("model") or "gpt-4o-mini"
        self.id = server._new_id("chatcmpl")
        self.text = reply.text if reply.text is not None else ("" if reply.tool_calls else f"echo: {last_user}")
        self.calls = [(c.id or server._new_id("call"), c) for c in reply.tool_calls]
        self.finish = reply.finish_reason or ("tool_calls" if reply.tool_calls else "stop")
        self.usage = _usage(reply, " ".join(_text_of(m.get("content")) for m in messages if isinstance(m, dict)), self.text)
        self.include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

    def _usage_json(self) -> dict[str, Any]:
        u = self.usage
        return {
            "prompt_tokens": u.input_tokens,
            "completion_tokens": u.output_tokens,
            "total_tokens": u.input_tokens + u.output_tokens,
            "prompt_tokens_details": {"cached_tokens": u.cached_tokens},
            "completion_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
        }

    def completion(self) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": self.text or None, "refusal": None}
        if self.reply.reasoning:
            message["reasoning_content"] = self.reply.reasoning
        if self.calls:
            message["tool_calls"] = [
                {"id": cid, "type": "function", "function": {"name": c.name, "arguments": json.dumps(c.arguments)}}
                for cid, c in self.calls
            ]
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model,
            "system_fingerprint": "fp_fake",
            "choices": [{"index": 0, "message": message, "finish_reason": self.finish, "logprobs": None}],
            "usage": self._usage_json(),
        }

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        chunk = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": self.model,
            "system_fingerprint": "fp_fake",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
        }
        if self.include_usage:
            chunk["usage"] = None
        return b"data: " + json.dumps(chunk).encode() + b"\n\n"

    def chunks(self) -> Iterator[bytes]:
        yield self._chunk({"role": "assistant", "content": ""})
        if self.reply.reasoning:
            for piece in _words(self.reply.reasoning):
                yield self._chunk({"reasoning_content": piece})
        for piece in _words(self.text) if self.text else []:
            yield self._chunk({"content": piece})
        for index, (cid, call) in enumerate(self.calls):
            args = json.dumps(call.arguments)
            head = {"index": index, "id": cid, "type": "function", "function": {"name": call.name, "arguments": ""}}
            yield self._chunk({"tool_calls": [head]})
            half = len(args) // 2
            for part in (args[:half], args[half:]):
                yield self._chunk({"tool_calls": [{"index": index, "function": {"arguments": part}}]})
        yield self._chunk({}, self.finish)
        if self.include_usage:
            final = {
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": self.model,
                "choices": [],
                "usage": self._usage_json(),
            }
            yield b"data: " + json.dumps(final).encode() + b"\n\n"
        yield b"data: [DONE]\n\n"


class _Responses:
    """Responses API answers built from one Reply."""

    def __init__(self, server: FakeOpenAI, body: dict, reply: Reply) -> None:
        items = body.get("input")
        if isinstance(items, str):
            prompt = last_user = items
        else:
            users = [i for i in items or [] if isinstance(i, dict) and i.get("role") == "user"]
            last_user = _text_of(users[-1].get("content")) if users else ""
            prompt = " ".join(_text_of(i.get("content")) for i in items or [] if isinstance(i, dict))
        self.server = server
        self.reply = reply
        self.body = body
        self.model = reply.model or body.get("model") or "gpt-4o-mini"
        self.id = server._new_id("resp")
        self.text = reply.text if reply.text is not None else ("" if reply.tool_calls else f"echo: {last_user}")
        self.usage = _usage(reply, prompt, self.text)
        self.message_id = server._new_id("msg")
        self.calls = [(server._new_id("fc"), c.id or server._new_id("call"), c) for c in reply.tool_calls]
        self.reasoning_id = server._new_id("rs")
        self.seq = 0

    def _message(self, text: str, status: str) -> dict[str, Any]:
        part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
        return {"type": "message", "id": self.message_id, "role": "assistant", "status": status, "content": [part]}

    def _call(self, item_id: str, call_id: str, call: ToolCall, arguments: str, status: str) -> dict[str, Any]:
        return {
            "type": "function_call",
            "id": item_id,
            "call_id": call_id,
            "name": call.name,
            "arguments": arguments,
            "status": status,
        }

    def _reasoning(self) -> dict[str, Any]:
        summary = [{"type": "summary_text", "text": self.reply.reasoning}]
        return {"type": "reasoning", "id": self.reasoning_id, "summary": summary}

    def _output(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = [self._reasoning()] if self.reply.reasoning else []
        if self.text:
            out.append(self._message(self.text, "completed"))
        out += [self._call(i, c, call, json.dumps(call.arguments), "completed") for i, c, call in self.calls]
        return out

    def response(self, status: str = "completed", output: list | None = None) -> dict[str, Any]:
        u = self.usage
        incomplete = None
        if self.reply.finish_reason == "length":
            status, incomplete = "incomplete", {"reason": "max_output_tokens"}
        return {
            "id": self.id,
            "object": "response",
            "created_at": int(time.time()),
            "status": status,
            "model": self.model,
            "output": self._output() if output is None else output,
            "instructions": self.body.get("instructions"),
            "incomplete_details": incomplete,
            "error": None,
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": self.body.get("tools") or [],
            "temperature": self.body.get("temperature"),
            "top_p": self.body.get("top_p"),
            "max_output_tokens": self.body.get("max_output_tokens"),
            "usage": {
                "input_tokens": u.input_tokens,
                "input_tokens_details": {"cached_tokens": u.cached_tokens},
                "output_tokens": u.output_tokens,
                "output_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
                "total_tokens": u.input_tokens + u.output_tokens,
            }
            if status != "in_progress"
            else None,
        }

    def _event(self, kind: str, **payload: Any) -> bytes:
        payload = {"type": kind, "sequence_number": self.seq, **payload}
        self.seq += 1
        return f"event: {kind}\ndata: {json.dumps(payload)}\n\n".encode()

    def events(self) -> Iterator[bytes]:
        yield self._event("response.created", response=self.response("in_progress", []))
        index = 0
        if self.reply.reasoning:
            yield self._event("response.output_item.added", output_index=index, item=self._reasoning())
            yield self._event("response.output_item.done", output_index=index, item=self._reasoning())
            index += 1
        if self.text:
            ids = {"item_id": self.message_id, "output_index": index, "content_index": 0}
            yield self._event("response.output_item.added", output_index=index, item=self._message("", "in_progress"))
            empty = {"type": "output_text", "text": "", "annotations": []}
            yield self._event("response.content_part.added", part=empty, **ids)
            for piece in _words(self.text):
                yield self._event("response.output_text.delta", delta=piece, logprobs=[], **ids)
            yield self._event("response.output_text.done", text=self.text, logprobs=[], **ids)
            done = {"type": "output_text", "text": self.text, "annotations": []}
            yield self._event("response.content_part.done", part=done, **ids)
            yield self._event("response.output_item.done", output_index=index, item=self._message(self.text, "completed"))
            index += 1
        for item_id, call_id, call in self.calls:
            args = json.dumps(call.arguments)
            added = self._call(item_id, call_id, call, "", "in_progress")
            yield self._event("response.output_item.added", output_index=index, item=added)
            yield self._event("response.function_call_arguments.delta", item_id=item_id, output_index=index, delta=args)
            yield self._event("response.function_call_arguments.done", item_id=item_id, output_index=index, arguments=args)
            done_item = self._call(item_id, call_id, call, args, "completed")
            yield self._event("response.output_item.done", output_index=index, item=done_item)
            index += 1
        final = self.response()
        yield self._event(f"response.{final['status']}", response=final)


def _embeddings(body: dict, reply: Reply) -> dict[str, Any]:
    inputs = body.get("input")
    texts = [inputs] if isinstance(inputs, (str, int)) or (inputs and isinstance(inputs[0], int)) else list(inputs or [])
    dims = int(body.get("dimensions") or 8)
    data = []
    for index, text in enumerate(texts):
        seed = sum(str(text).encode()) or 1
        vector = [((seed * (i + 3)) % 101) / 101.0 for i in range(dims)]
        if body.get("encoding_format") == "base64":
            encoded: Any = base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode()
        else:
            encoded = vector
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    tokens = reply.usage.input_tokens if reply.usage else sum(_count(str(t)) for t in texts)
    model = reply.model or body.get("model") or "text-embedding-3-small"
    return {"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


def main() -> None:
    parser = argparse.ArgumentParser(description="Run the fake OpenAI server until interrupted.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds to wait before each answer")
    args = parser.parse_args()
    with FakeOpenAI(latency=args.latency, port=args.port) as server:
        print(server.base_url, flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
