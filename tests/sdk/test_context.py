"""Nesting across thread pools and asyncio tasks, written the way users write them."""
from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import tracelake


def ask(client, text):
    return client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": text}])


def test_thread_pool_submit_and_map(client, collect):
    @tracelake.trace(name="worker")
    def worker(text):
        return ask(client, text).choices[0].message.content

    with tracelake.session("s-threads"), tracelake.span("fan out"):
        with ThreadPoolExecutor(max_workers=4) as pool:
            futures = [pool.submit(worker, f"q{i}") for i in range(4)]
            mapped = list(pool.map(lambda t: ask(client, t).choices[0].message.content, ["m1", "m2"]))
        results = [f.result() for f in futures]
    assert results == ["echo: q0", "echo: q1", "echo: q2", "echo: q3"] and mapped == ["echo: m1", "echo: m2"]

    spans = collect()
    root = spans.one("fan out")
    workers = spans.named("worker")
    assert len(workers) == 4 and all(spans.parent(w) is root for w in workers)
    for w in workers:
        [call] = spans.children(w)
        assert call.json("gen_ai.input.messages")[0]["parts"][0]["content"] == w.json("input.value")["text"]
    direct = [s for s in spans.children(root) if s.name == "chat gpt-4o-mini"]
    assert len(direct) == 2
    assert all(s.attributes.get("session.id") == "s-threads" for s in spans)


def test_asyncio_gather(aclient, collect):
    @tracelake.trace(name="handle")
    async def handle(text):
        reply = await aclient.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": text}])
        return reply.choices[0].message.content

    @tracelake.trace(name="main")
    async def main():
        return await asyncio.gather(*(handle(f"t{i}") for i in range(3)))

    assert asyncio.run(main()) == ["echo: t0", "echo: t1", "echo: t2"]
    spans = collect()
    handles = spans.named("handle")
    assert len(handles) == 3 and all(spans.parent(h).name == "main" for h in handles)
    for h in handles:
        [call] = spans.children(h)
        assert call.json("gen_ai.input.messages")[0]["parts"][0]["content"] == h.json("input.value")["text"]


def test_asyncio_create_task_and_to_thread(client, collect):
    async def main():
        with tracelake.span("async root"):
            task = asyncio.create_task(asyncio.to_thread(ask, client, "in thread"))
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, ask, client, "in executor")
            await task

    asyncio.run(main())
    spans = collect()
    root = spans.one("async root")
    assert len(spans.children(root)) == 2 and len(spans.roots()) == 1


def test_unrelated_threads_stay_separate_roots(client, collect):
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(lambda t: ask(client, t), ["a", "b"]))
    assert len(collect().roots()) == 2
