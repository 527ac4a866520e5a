"""An instrumented app: ``python att_agent.py OTLP_ENDPOINT OPENAI_BASE_URL MESSAGES_JSON``.

Runs one OpenAI chat completion under ``tracelake.autotrace()`` (the real SDK) and exports its
span before exiting. A subprocess, because autotrace() installs a process-wide provider.
"""
from __future__ import annotations

import json
import sys

import openai

import tracelake


def main(endpoint: str, base_url: str, messages_path: str) -> None:
    tracelake.autotrace(endpoint=endpoint, service_name="attachments-agent", project="attachments")
    client = openai.OpenAI(base_url=base_url, api_key="test-key")
    with open(messages_path) as f:
        messages = json.load(f)
    reply = client.chat.completions.create(model="gpt-4o-mini", messages=messages)
    tracelake.shutdown()
    print(json.dumps({"reply": reply.choices[0].message.content}), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:4])
