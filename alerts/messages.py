"""What a message says, for each kind of destination.

The generic webhook receives :func:`payload` as JSON (documented in docs/alerts.md, ``"version":
1``); Slack-compatible webhooks receive :func:`slack` (``text`` plus Block Kit ``blocks``, which
Slack, Mattermost and Rocket.Chat read); e-mail gets :func:`email` (subject and plain text).
Values from traces (a group is a user id, a model...) are untrusted: Slack's mrkdwn control
characters are escaped; e-mail is plain text.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from tracelake.alerts.history import trace_list_query
from tracelake.alerts.model import UNITS, Rule
from tracelake.alerts.state import AlertState

VERSION = 1


def traces_link(base_url: str, rule: Rule, group: str, window_start: datetime, window_end: datetime) -> str:
    """The trace list showing the traces behind the value: the filter, the group, the window."""
    q = urlencode({"q": trace_list_query(rule, group), "from": int(window_start.timestamp() * 1000),
                   "to": int(window_end.timestamp() * 1000)})
    return f"{base_url.rstrip('/')}/traces?{q}"


def rule_link(base_url: str, rule: Rule) -> str:
    return f"{base_url.rstrip('/')}/alerts/rules/{rule.name}" + (f"?{urlencode({'project': rule.project})}"
                                                                 if rule.project else "")


def format_value(rule: Rule, value: float | None) -> str:
    if value is None:
        return "no data"
    kind = rule.aggregate.kind
    if kind == "error_rate":
        return f"{value * 100:.2f} %"
    if kind == "cost":
        return f"${value:,.4f}"
    if kind.endswith("_latency"):
        return f"{value:,.0f} ms"
    return f"{value:,.6g}" + (f" {UNITS[kind]}" if UNITS[kind] else "")


def payload(kind: str, rule: Rule, s: AlertState, now: datetime, base_url: str, message_id: str) -> dict[str, Any]:
    start, end = now - rule.window, now
    return {
        "version": VERSION,
        "id": message_id,
        "kind": kind,  # firing | resolved | reminder
        "state": "firing" if kind != "resolved" else "resolved",
        "rule": rule.describe(),
        "group": s.group if rule.group_by else None,
        "value": s.value,
        "value_text": format_value(rule, s.value),
        "threshold_text": f"{rule.op} {format_value(rule, rule.threshold)}",
        "since": s.since.isoformat(),
        "at": now.isoformat(),
        "window": {"start": start.isoformat(), "end": end.isoformat()},
        "links": {"traces": traces_link(base_url, rule, s.group, start, end),
                  "rule": rule_link(base_url, rule)},
    }


def title(p: dict[str, Any]) -> str:
    word = {"firing": "FIRING", "resolved": "RESOLVED", "reminder": "STILL FIRING"}.get(p["kind"], "TEST")
    group = f" [{p['rule']['group_by']}={p['group']}]" if p.get("group") is not None else ""
    return f"[{word}] {p['rule']['name']}{group}: {p['rule']['aggregate']} = {p['value_text']}"


def _mrkdwn(text: str) -> str:
    """Slack's three control characters escaped, so a value cannot make a link or a mention."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack(p: dict[str, Any]) -> dict[str, Any]:
    r = p["rule"]
    detail = (f"{r['aggregate']} over {r['window']} {p['threshold_text']}" + (f" · filter `{r['filter']}`" if r["filter"] else "")
              + (f" · project {r['project']}" if r["project"] else "") + f" · severity {r['severity']}")
    text = _mrkdwn(title(p))
    return {"text": text, "blocks": [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{text}*\n{_mrkdwn(detail)}"}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": _mrkdwn(f"since {p['since']} · at {p['at']}")}]},
        {"type": "actions", "elements": [
            {"type": "button", "text": {"type": "plain_text", "text": "Traces"}, "url": p["links"]["traces"]},
            {"type": "button", "text": {"type": "plain_text", "text": "Rule"}, "url": p["links"]["rule"]}]},
    ]}


def email(p: dict[str, Any]) -> tuple[str, str]:
    r = p["rule"]
    lines = [title(p), "", f"Rule:      {r['name']} ({r['severity']})", f"Aggregate: {r['aggregate']} over {r['window']}",
             f"Value:     {p['value_text']} (threshold {p['threshold_text']})"]
    if r["filter"]:
        lines.append(f"Filter:    {r['filter']}")
    if p.get("group") is not None:
        lines.append(f"Group:     {r['group_by']} = {p['group']}")
    lines += [f"Since:     {p['since']}", f"At:        {p['at']}", "", f"Traces: {p['links']['traces']}",
              f"Rule:   {p['links']['rule']}"]
    if r["description"]:
        lines += ["", r["description"]]
    return title(p)[:250].replace("\r", " ").replace("\n", " "), "\n".join(lines) + "\n"


__all__ = ["VERSION", "email", "format_value", "payload", "slack", "title", "traces_link"]
