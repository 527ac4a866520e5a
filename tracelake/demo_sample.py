"""The sample ``tracelake demo`` sends: a few days of LLM-agent traffic, made up but shaped like the
real thing, so every page has something to show and retention has old traces to move.

Pure: :func:`build_sample` returns spans and touches nothing. What is in it:

* ``support-agent`` (OTel GenAI ``gen_ai.*``): an HTTP turn, an ``invoke_agent`` span, a planner loop of
  ``chat`` calls and ``execute_tool`` calls; sessions of several turns per user; one turn carries a
  PNG screenshot as a ``blob`` part (the collector lifts it into an attachment);
* ``research-agent`` (OpenInference ``llm.*``, ``retrieval.documents``): embed, retrieve, answer;
* ``ticket-worker`` (OpenLLMetry ``gen_ai.prompt.N.*``): a batch job without users or sessions;
* ``code-review-agent``: one big trace (thousands of spans, long runs of same-named siblings);
* errors in each: a tool timing out, a rate limit, an overloaded provider, a bad model output,
  each a span with status ERROR and an ``exception`` event.

``seed`` fixes the content and shape (who asks what, which calls fail, relative times). ``run``
only seeds the ids (trace, span, session), so two runs never merge into one another's traces or
sessions. ``now_ns`` anchors the times: traces spread over the ``days`` before it.
"""
from __future__ import annotations

import base64
import json
import random
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any

INTERNAL, SERVER, CLIENT, CONSUMER = 1, 2, 3, 5
OK, ERROR = 1, 2
SECOND = 10**9
MINUTE = 60 * SECOND
DAY = 86_400 * SECOND
# Traces of day d start in [now - (d+1) days + EDGE, now - d days - EDGE] and last less than EDGE,
# so with `hot: 1d` every trace of days 1.. leaves hot and none of day 0 does.
EDGE = 15 * MINUTE


@dataclass
class Span:
    service: str
    trace_id: bytes
    span_id: bytes
    parent: bytes
    name: str
    kind: int
    start: int
    end: int
    attrs: dict[str, Any]
    status: int = 0
    message: str = ""
    events: list[tuple[str, int, dict[str, Any]]] = field(default_factory=list)


@dataclass
class Sample:
    run: str
    spans: list[Span]
    traces: int
    start_ns: int
    end_ns: int
    services: list[str]
    sessions: list[str]
    showcase_session: str  # a session of several turns with a tool call, an error and the image
    big_trace: str
    big_spans: int
    image_trace: str
    image_span: str
    error_traces: int


# --- content -----------------------------------------------------------------------------------
USERS = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory", "oscar")

SUPPORT_SYSTEM = ("You are the support assistant of Northwind Outfitters. Use the tools to look things up; "
                  "never guess an order's status. Be brief and friendly.")
SUPPORT_TOPICS: tuple[tuple[str, str, dict[str, Any], dict[str, Any], str], ...] = (
    ("Where is my order {order}? It was supposed to arrive yesterday.", "lookup_order", {"order_id": "{order}"},
     {"status": "in_transit", "carrier": "UPS", "eta": "tomorrow before 18:00"},
     "Your order {order} is on its way with UPS and should arrive tomorrow before 18:00."),
    ("I want to return the hiking boots from order {order}, they are too small.", "create_return",
     {"order_id": "{order}", "item": "hiking boots", "reason": "size"},
     {"return_id": "R-{order}", "label_url": "https://returns.example/R-{order}.pdf"},
     "I've opened return R-{order}; the prepaid label is in your email. Drop the boots at any UPS point."),
    ("Can I change the delivery address of {order} to my office?", "update_address",
     {"order_id": "{order}", "address": "12 Market St, Springfield"}, {"updated": True},
     "Done: order {order} will now go to 12 Market St, Springfield."),
    ("Do the Trailblazer jackets run small?", "search_kb", {"query": "Trailblazer jacket sizing"},
     {"articles": [{"id": "kb-211", "title": "Trailblazer sizing", "snippet": "Runs half a size small."}]},
     "They run about half a size small, so most people order one size up."),
    ("I was charged twice for order {order}.", "lookup_payment", {"order_id": "{order}"},
     {"charges": [{"amount": 129.0, "state": "captured"}, {"amount": 129.0, "state": "voided"}]},
     "One of the two charges was voided and will disappear from your statement within 3 business days."),
)
FOLLOW_UPS = ("Thanks! And can you also check my other order?", "OK, what about express shipping?",
              "Great, thank you.", "Can I get a discount for the delay?", "How long does a refund take?")
FOLLOW_UP_ANSWERS = ("Of course, one moment.", "Express shipping is $12 and arrives in 1-2 days.",
                     "You're welcome, have a great day!", "I've added a 10% voucher to your account.",
                     "Refunds reach your card 3-5 business days after we receive the return.")

RESEARCH_QUESTIONS = ("Which of our products had the most returns last quarter and why?",
                      "Summarize customer feedback on the new rain shell.",
                      "What do competitors charge for express shipping?",
                      "Which suppliers had late deliveries in October?",
                      "What are the top three reasons for support contacts this month?")
DOCS = ("Returns report Q3: boots (412 returns, sizing), rain shell (188, zipper), tents (95, missing pegs).",
        "Feedback digest: customers like the rain shell's weight; several report the zipper sticks when cold.",
        "Market scan: competitors charge $9-15 for express shipping, two offer it free above $150.",
        "Supplier scorecard October: Alpine Textiles late on 4 of 11 shipments; others on time.",
        "Contact reasons: where-is-my-order 38%, returns 27%, sizing questions 14%.")

TICKETS = ("Customer says the tent arrived without poles and they leave for a trip on Friday.",
           "Jacket zipper broke after two weeks; customer wants a replacement, not a refund.",
           "Order shows delivered but the customer found nothing at the door; neighbours checked too.",
           "Customer asks whether the sleeping bag is rated for -10C and wants an invoice with VAT.")

FILES = ("api/orders.py", "api/returns.py", "api/payments.py", "core/models.py", "core/pricing.py", "core/tax.py",
         "web/cart.ts", "web/checkout.ts", "web/account.ts", "jobs/shipping.py", "jobs/reminders.py", "lib/util.py")


# --- a tiny PNG --------------------------------------------------------------------------------
def chart_png(seed: int, width: int = 160, height: int = 96) -> bytes:
    """A bar chart of six monthly bills, the fourth much higher, as a PNG made with zlib alone. Light
    paper-like noise keeps it above the collector's 1 KiB extraction threshold, as a screenshot is."""
    rng = random.Random(seed)
    bars = [0.30, 0.34, 0.31, 0.86, 0.33, 0.36]
    rows = bytearray()
    for y in range(height):
        rows.append(0)  # filter: none
        for x in range(width):
            r = g = b = 246 - rng.randrange(10)
            if y == height - 8 or x == 10:  # axes
                r = g = b = 60
            else:
                slot, offset = divmod(x - 16, 24)
                if 0 <= slot < len(bars) and 3 <= offset < 19 and height - 8 - y < bars[slot] * (height - 14) and y < height - 8:
                    r, g, b = (214, 60, 50) if slot == 3 else (70, 120, 190)
            rows += bytes((r, g, b))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(rows), 9)) + chunk(b"IEND", b"")


# --- building ----------------------------------------------------------------------------------
def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _text(role: str, text: str) -> dict[str, Any]:
    return {"role": role, "parts": [{"type": "text", "content": text}]}


class _Builder:
    def __init__(self, seed: int, run: str) -> None:
        self.rng = random.Random(seed)  # content and shape
        self.ids = random.Random(f"{seed}/{run}")  # ids only, so a new run never reuses one
        self.run = run
        self.spans: list[Span] = []
        self.errors: set[bytes] = set()

    def trace_id(self) -> bytes:
        return self.ids.randbytes(16)

    def span(self, service: str, trace: bytes, parent: bytes, name: str, start: int, duration: int,
             kind: int = INTERNAL, attrs: dict[str, Any] | None = None,
             error: tuple[str, str] | None = None) -> Span:
        s = Span(service, trace, self.ids.randbytes(8), parent, name, kind, start, start + duration, dict(attrs or {}))
        if error is not None:
            etype, message = error
            s.status, s.message = ERROR, f"{etype}: {message}"
            s.attrs["error.type"] = etype
            stack = (f"Traceback (most recent call last):\n  File \"{service.replace('-', '_')}/main.py\", line "
                     f"{self.rng.randrange(40, 400)}, in handle\n    return step(ctx)\n{etype}: {message}")
            s.events.append(("exception", start + duration - 1_000_000, {
                "exception.type": etype, "exception.message": message, "exception.stacktrace": stack}))
            self.errors.add(trace)
        self.spans.append(s)
        return s

    def ms(self, lo: int, hi: int) -> int:
        return self.rng.randrange(lo, hi) * 1_000_000

    def session_id(self, n: int, kind: str = "chat") -> str:
        return f"{kind}-{self.run}-{n:03d}"

    def order(self) -> str:
        return f"NW-{self.rng.randrange(10000, 99999)}"

    # support-agent: OTel GenAI -----------------------------------------------------------------
    def support_turn(self, start: int, session: str, user: str, question: str, tool: str | None,
                     args: dict[str, Any], result: dict[str, Any], answer: str, history: list[dict[str, Any]],
                     image: bytes | None = None, failure: str = "") -> int:
        """One user turn; returns its end. ``failure``: '' | 'tool_timeout' (recovered) | 'rate_limit'."""
        svc, trace = "support-agent", self.trace_id()
        who = {"session.id": session, "user.id": user}
        model = self.rng.choice(("gpt-4o", "gpt-4o", "gpt-4.1-mini"))
        served = {"gpt-4o": "gpt-4o-2024-08-06", "gpt-4.1-mini": "gpt-4.1-mini-2025-04-14"}[model]
        root = self.span(svc, trace, b"", "POST /v1/chat", start, 0, SERVER,
                         {"http.request.method": "POST", "http.route": "/v1/chat", "url.path": "/v1/chat",
                          "http.response.status_code": 200, **who})
        agent = self.span(svc, trace, root.span_id, "invoke_agent support-agent", start + self.ms(1, 4), 0, INTERNAL,
                          {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "support-agent",
                           "gen_ai.provider.name": "openai", **who})
        parts: list[dict[str, Any]] = [{"type": "text", "content": question}]
        if image is not None:
            parts.append({"type": "blob", "modality": "image", "mime_type": "image/png", "name": "billing.png",
                          "content": base64.b64encode(image).decode()})
        messages = history + [{"role": "user", "parts": parts}]
        t = agent.start + self.ms(2, 10)

        def chat(t: int, msgs: list[dict[str, Any]], out: dict[str, Any] | None, finish: str,
                 error: tuple[str, str] | None = None) -> Span:
            tokens_in = 350 + 40 * len(_json(msgs)) // 160 + self.rng.randrange(0, 300)
            attrs = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                     "gen_ai.request.model": model, "gen_ai.request.temperature": 0.2,
                     "gen_ai.system_instructions": _json([{"type": "text", "content": SUPPORT_SYSTEM}]),
                     "gen_ai.input.messages": _json(msgs), "server.address": "api.openai.com", **who}
            if out is not None:
                attrs.update({"gen_ai.response.model": served, "gen_ai.response.id": f"chatcmpl-{self.ids.randbytes(6).hex()}",
                              "gen_ai.response.finish_reasons": [finish], "gen_ai.usage.input_tokens": tokens_in,
                              "gen_ai.usage.output_tokens": self.rng.randrange(20, 260),
                              "gen_ai.output.messages": _json([{**out, "finish_reason": finish}])})
            return self.span(svc, trace, agent.span_id, f"chat {model}", t, self.ms(500, 2600) if out else self.ms(80, 300),
                             CLIENT, attrs, error)

        if tool is not None:
            call_id = f"call_{self.ids.randbytes(6).hex()}"
            plan = chat(t, messages, {"role": "assistant", "parts": [
                {"type": "tool_call", "id": call_id, "name": tool, "arguments": args}]}, "tool_calls")
            t = plan.end + self.ms(1, 5)
            tool_attrs = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": tool, "gen_ai.tool.type": "function",
                          "gen_ai.tool.call.id": call_id, "gen_ai.tool.call.arguments": _json(args)}
            if failure == "tool_timeout":  # the first try times out; the agent retries and succeeds
                failed = self.span(svc, trace, agent.span_id, f"execute_tool {tool}", t, 5 * SECOND, INTERNAL, tool_attrs,
                                   ("TimeoutError", f"{tool} did not answer within 5.0 s"))
                t = failed.end + self.ms(200, 600)
            done = self.span(svc, trace, agent.span_id, f"execute_tool {tool}", t, self.ms(20, 700), INTERNAL,
                             {**tool_attrs, "gen_ai.tool.call.result": _json(result)})
            t = done.end + self.ms(1, 5)
            messages = messages + [{"role": "assistant", "parts": [{"type": "tool_call", "id": call_id, "name": tool,
                                                                   "arguments": args}]},
                                   {"role": "tool", "parts": [{"type": "tool_call_response", "id": call_id,
                                                               "response": result}]}]
        if failure == "rate_limit":
            last = chat(t, messages, None, "", ("openai.RateLimitError",
                                               f"Error code: 429 - Rate limit reached for {model} in organization "
                                               "org-northwind on tokens per min (TPM): Limit 30000, Used 29811"))
            agent.status, agent.message = ERROR, last.message
            root.status, root.message = ERROR, "upstream model error"
            root.attrs["http.response.status_code"] = 502
        else:
            last = chat(t, messages, {"role": "assistant", "parts": [{"type": "text", "content": answer}]}, "stop")
        agent.end = last.end + self.ms(1, 4)
        root.end = agent.end + self.ms(1, 6)
        history += [{"role": "user", "parts": parts}, _text("assistant", answer)]
        return root.end

    # research-agent: OpenInference -------------------------------------------------------------
    def research(self, start: int, session: str, user: str, q: int, failure: bool) -> int:
        svc, trace = "research-agent", self.trace_id()
        question, who = RESEARCH_QUESTIONS[q], {"session.id": session, "user.id": user}
        root = self.span(svc, trace, b"", "research", start, 0, INTERNAL,
                         {"openinference.span.kind": "CHAIN", "input.value": question, "input.mime_type": "text/plain", **who})
        t = start + self.ms(2, 8)
        emb = self.span(svc, trace, root.span_id, "embed_query", t, self.ms(60, 250), CLIENT,
                        {"openinference.span.kind": "EMBEDDING", "embedding.model_name": "text-embedding-3-small",
                         "llm.model_name": "text-embedding-3-small", "llm.provider": "openai",
                         "llm.token_count.prompt": 12 + len(question) // 4})
        picked = [q] + self.rng.sample([i for i in range(len(DOCS)) if i != q], 2)  # the relevant one ranks first
        docs: dict[str, Any] = {"openinference.span.kind": "RETRIEVER", "input.value": question}
        for n, i in enumerate(picked):
            docs.update({f"retrieval.documents.{n}.document.id": f"doc-{i + 1:04d}",
                         f"retrieval.documents.{n}.document.content": DOCS[i],
                         f"retrieval.documents.{n}.document.score": round(0.92 - 0.11 * n - self.rng.random() * 0.05, 3)})
        ret = self.span(svc, trace, root.span_id, "retrieve", emb.end + self.ms(1, 5), self.ms(30, 180), INTERNAL, docs)
        context = "\n".join(DOCS[i] for i in picked)
        attrs: dict[str, Any] = {
            "openinference.span.kind": "LLM", "llm.provider": "anthropic", "llm.system": "anthropic",
            "llm.model_name": "claude-3-5-sonnet-20241022",
            "llm.input_messages.0.message.role": "system",
            "llm.input_messages.0.message.content": "Answer from the documents only; cite them.",
            "llm.input_messages.1.message.role": "user",
            "llm.input_messages.1.message.content": f"Documents:\n{context}\n\nQuestion: {question}", **who}
        answer = f"From the documents: {DOCS[q].split(': ', 1)[1]}"
        if failure:
            llm = self.span(svc, trace, root.span_id, "synthesize", ret.end + self.ms(1, 5), self.ms(300, 900), CLIENT, attrs,
                            ("anthropic.InternalServerError", "Error code: 529 - {'type': 'overloaded_error', "
                             "'message': 'Overloaded'}"))
            root.status, root.message = ERROR, llm.message
        else:
            attrs.update({"llm.output_messages.0.message.role": "assistant",
                          "llm.output_messages.0.message.content": answer,
                          "llm.token_count.prompt": 180 + len(context) // 4,
                          "llm.token_count.completion": 40 + self.rng.randrange(0, 220)})
            llm = self.span(svc, trace, root.span_id, "synthesize", ret.end + self.ms(1, 5), self.ms(1200, 5200), CLIENT, attrs)
            root.attrs.update({"output.value": answer, "output.mime_type": "text/plain"})
        root.end = llm.end + self.ms(1, 5)
        return root.end

    # ticket-worker: OpenLLMetry ----------------------------------------------------------------
    def ticket(self, start: int, failure: bool) -> int:
        svc, trace = "ticket-worker", self.trace_id()
        text = self.rng.choice(TICKETS)
        ticket = f"T-{self.rng.randrange(100000, 999999)}"
        root = self.span(svc, trace, b"", "summarize_ticket.task", start, 0, CONSUMER,
                         {"traceloop.span.kind": "task", "traceloop.entity.name": "summarize_ticket",
                          "traceloop.entity.input": _json({"ticket": ticket, "text": text}),
                          "messaging.system": "rabbitmq", "messaging.destination.name": "tickets"})
        out = _json({"summary": text.split(";")[0][:80], "priority": self.rng.choice(("high", "normal")),
                     "category": self.rng.choice(("delivery", "product", "billing"))})
        attrs = {"llm.request.type": "chat", "gen_ai.system": "OpenAI", "gen_ai.request.model": "gpt-4o-mini",
                 "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
                 "gen_ai.prompt.0.role": "system", "gen_ai.prompt.0.content": "Summarize the ticket as JSON: summary, priority, category.",
                 "gen_ai.prompt.1.role": "user", "gen_ai.prompt.1.content": text,
                 "gen_ai.usage.prompt_tokens": 60 + len(text) // 4, "gen_ai.usage.completion_tokens": 30 + self.rng.randrange(0, 40),
                 "gen_ai.completion.0.role": "assistant", "gen_ai.completion.0.finish_reason": "stop",
                 "gen_ai.completion.0.content": out[:-5] if failure else out}
        llm = self.span(svc, trace, root.span_id, "openai.chat", start + self.ms(3, 20), self.ms(400, 1800), CLIENT, attrs)
        parse = self.span(svc, trace, root.span_id, "parse_summary", llm.end + self.ms(1, 3), self.ms(1, 3), INTERNAL, {},
                          ("json.JSONDecodeError", "Unterminated string starting at: line 1 column 64 (char 63)")
                          if failure else None)
        if failure:
            root.status, root.message = ERROR, parse.message
        else:
            root.attrs["traceloop.entity.output"] = out
        root.end = parse.end + self.ms(1, 4)
        return root.end

    # code-review-agent: one big trace ----------------------------------------------------------
    def big(self, start: int, spans: int) -> tuple[bytes, int]:
        svc, trace = "code-review-agent", self.trace_id()
        files = max(1, (spans - 2) // 4)  # 4 spans per file, plus the root and the summary
        root = self.span(svc, trace, b"", "review_pull_request", start, 0, INTERNAL,
                         {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "code-review-agent",
                          "vcs.repository.name": "northwind/shop", "vcs.change.id": "4821", "review.files": files})
        t = start + self.ms(20, 80)
        for i in range(files):
            path = f"{FILES[i % len(FILES)].replace('/', f'/v{i // len(FILES)}/', 1)}"
            f = self.span(svc, trace, root.span_id, "review_file", t, 0, INTERNAL, {"code.file.path": path})
            read = self.span(svc, trace, f.span_id, "execute_tool read_file", t + self.ms(1, 3), self.ms(2, 20), INTERNAL,
                             {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "read_file",
                              "gen_ai.tool.call.arguments": _json({"path": path})})
            lint_fail = self.rng.random() < 0.01
            lint = self.span(svc, trace, f.span_id, "execute_tool run_linter", read.end + self.ms(1, 3), self.ms(50, 400),
                             INTERNAL, {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "run_linter",
                                        "gen_ai.tool.call.arguments": _json({"path": path})},
                             ("subprocess.CalledProcessError", "Command '['ruff', 'check']' returned non-zero exit status 2.")
                             if lint_fail else None)
            note = self.rng.choice(("Looks good.", "Consider a guard for an empty list.", "This query misses an index.",
                                    "Rename `tmp` to say what it holds.", "Add a test for the refund path."))
            llm = self.span(svc, trace, f.span_id, "chat gpt-4o-mini", lint.end + self.ms(1, 3), self.ms(400, 2500), CLIENT,
                            {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                             "gen_ai.request.model": "gpt-4o-mini", "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
                             "gen_ai.usage.input_tokens": self.rng.randrange(600, 3000),
                             "gen_ai.usage.output_tokens": self.rng.randrange(20, 200),
                             "gen_ai.input.messages": _json([_text("user", f"Review {path} for bugs and style.")]),
                             "gen_ai.output.messages": _json([{**_text("assistant", note), "finish_reason": "stop"}])})
            f.end = llm.end + self.ms(1, 3)
            t = f.end + self.ms(1, 10)
        for _ in range(spans - 2 - 4 * files):  # the remainder: review comments posted
            t = self.span(svc, trace, root.span_id, "execute_tool post_comment", t, self.ms(30, 90), INTERNAL,
                          {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "post_comment"}).end
        summary = self.span(svc, trace, root.span_id, "chat gpt-4o", t, self.ms(3000, 9000), CLIENT,
                            {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o",
                             "gen_ai.response.model": "gpt-4o-2024-08-06", "gen_ai.usage.input_tokens": 24000,
                             "gen_ai.usage.output_tokens": 900,
                             "gen_ai.input.messages": _json([_text("user", f"Summarize the review of {files} files.")]),
                             "gen_ai.output.messages": _json([{**_text("assistant", "Mostly clean; 3 files need changes "
                                                                       "before merge (see notes)."), "finish_reason": "stop"}])})
        root.end = summary.end + self.ms(5, 20)
        return trace, root.end


def _day_window(now: int, day: int) -> tuple[int, int]:
    return now - (day + 1) * DAY + EDGE, now - day * DAY - 2 * EDGE


def build_sample(seed: int = 7, days: int = 7, traces: int = 400, big_spans: int = 3000, run: str = "run",
                 now_ns: int = 0) -> Sample:
    """The demo's spans: ``traces`` traces (one of them the big one) over the ``days`` before ``now_ns``."""
    if days < 1 or traces < 8:
        raise ValueError("the sample needs at least 1 day and 8 traces")
    b = _Builder(seed, run)
    rng = b.rng
    image = chart_png(seed)
    sessions: list[str] = []
    count = 0
    # The showcase: a recent session of four turns (a tool call, a recovered tool timeout, the image).
    showcase = b.session_id(0)
    sessions.append(showcase)
    history: list[dict[str, Any]] = []
    t = now_ns - 75 * MINUTE
    order = b.order()
    fill = {"order": order}
    q, tool, args, result, answer = SUPPORT_TOPICS[0]
    t = b.support_turn(t, showcase, "alice", q.format(**fill), tool, _fmt(args, fill), _fmt(result, fill),
                       answer.format(**fill), history) + 40 * SECOND
    image_at = len(b.spans)
    t = b.support_turn(t, showcase, "alice", "My bill jumped this month, see the screenshot. Why is April so high?",
                       "lookup_payment", {"customer": "alice", "months": 6},
                       {"april": {"orders": 4, "total": 412.0}, "usual": 150.0}, "April had four orders, among them the "
                       "tent (249.00); nothing was charged twice.", history, image=image) + 55 * SECOND
    image_span = next(s for s in b.spans[image_at:] if "gen_ai.input.messages" in s.attrs)
    q, tool, args, result, answer = SUPPORT_TOPICS[1]
    t = b.support_turn(t, showcase, "alice", q.format(**fill), tool, _fmt(args, fill), _fmt(result, fill),
                       answer.format(**fill), history, failure="tool_timeout") + 30 * SECOND
    b.support_turn(t, showcase, "alice", "Great, thank you.", None, {}, {}, "You're welcome, have a great day!", history)
    count += 4
    big_trace, _ = b.big(now_ns - 3 * 3600 * SECOND, big_spans)
    count += 1
    unit = 0
    while count < traces:
        day = unit % days
        lo, hi = _day_window(now_ns, day)
        start = rng.randrange(lo, hi)
        kind = rng.random()
        if kind < 0.55:  # a support session of 1-5 turns
            session = b.session_id(len(sessions))
            sessions.append(session)
            user, history = rng.choice(USERS), []
            for turn in range(min(rng.randrange(1, 6), traces - count)):
                if turn == 0:
                    q, tool, args, result, answer = rng.choice(SUPPORT_TOPICS)
                    fill = {"order": b.order()}
                    q, args, result, answer = q.format(**fill), _fmt(args, fill), _fmt(result, fill), answer.format(**fill)
                    tool_name: str | None = tool
                else:
                    pick = rng.randrange(len(FOLLOW_UPS))
                    q, answer, tool_name, args, result = FOLLOW_UPS[pick], FOLLOW_UP_ANSWERS[pick], None, {}, {}
                roll = rng.random()
                failure = "rate_limit" if roll < 0.04 else "tool_timeout" if roll < 0.09 and tool_name else ""
                start = b.support_turn(start, session, user, q, tool_name, args, result, answer, history,
                                       failure=failure) + rng.randrange(15, 90) * SECOND
                count += 1
        elif kind < 0.8:  # research questions, 1-3 in a session
            session = b.session_id(len(sessions), "research")
            sessions.append(session)
            user = rng.choice(USERS[:6])
            for _ in range(min(rng.randrange(1, 4), traces - count)):
                start = b.research(start, session, user, rng.randrange(len(RESEARCH_QUESTIONS)),
                                   rng.random() < 0.06) + rng.randrange(20, 120) * SECOND
                count += 1
        else:  # a burst of ticket summaries
            for _ in range(min(rng.randrange(1, 4), traces - count)):
                start = b.ticket(start, rng.random() < 0.07) + rng.randrange(1, 30) * SECOND
                count += 1
        unit += 1
    starts = [s.start for s in b.spans]
    ends = [s.end for s in b.spans]
    return Sample(run=run, spans=b.spans, traces=count, start_ns=min(starts), end_ns=max(ends),
                  services=sorted({s.service for s in b.spans}), sessions=sessions, showcase_session=showcase,
                  big_trace=big_trace.hex(), big_spans=sum(1 for s in b.spans if s.trace_id == big_trace),
                  image_trace=image_span.trace_id.hex(), image_span=image_span.span_id.hex(),
                  error_traces=len(b.errors))


def _fmt(value: Any, fill: dict[str, str]) -> Any:
    """``value`` with ``{order}`` and the like filled in, through dicts and lists."""
    if isinstance(value, str):
        return value.format(**fill)
    if isinstance(value, dict):
        return {k: _fmt(v, fill) for k, v in value.items()}
    if isinstance(value, list):
        return [_fmt(v, fill) for v in value]
    return value
