"""What each destination receives: the webhook JSON (version 1), Slack's text and blocks with
untrusted values escaped, and an e-mail through SMTP (a small SMTP receiver in the test)."""
from __future__ import annotations

import socketserver
import threading
from datetime import timedelta
from email import message_from_bytes

from alerts_helpers import T0

from tracelake.alerts.config import AlertsConfig, SmtpConfig
from tracelake.alerts.delivery import Sender
from tracelake.alerts.messages import payload, slack
from tracelake.alerts.rulefile import parse_rules
from tracelake.alerts.state import AlertState

RULE = parse_rules("""rules:
  - name: cost-per-user
    filter: 'model:gpt-4o*'
    aggregate: cost
    window: 1d
    threshold: $5
    group_by: user
    severity: critical
    destinations: [mail]
""", "t.yaml").rules[0]
EVIL = "<!channel> <https://evil.example|click> & co"


def _payload(kind: str = "firing") -> dict:
    s = AlertState("cost-per-user", EVIL, "", "firing", T0 - timedelta(minutes=3), value=7.25)
    return payload(kind, RULE, s, T0, "https://tracelake.example", "m1")


def test_the_webhook_json_says_what_fired_and_where_its_traces_are():
    p = _payload()
    assert set(p) == {"version", "id", "kind", "state", "rule", "group", "value", "value_text", "threshold_text",
                      "since", "at", "window", "links"}
    assert (p["version"], p["kind"], p["state"], p["group"], p["value"]) == (1, "firing", "firing", EVIL, 7.25)
    assert p["rule"]["name"] == "cost-per-user" and p["rule"]["threshold"] == 5.0 and p["rule"]["unit"] == "USD"
    assert p["value_text"] == "$7.2500" and p["threshold_text"] == "> $5.0000"
    assert p["window"] == {"start": (T0 - timedelta(days=1)).isoformat(), "end": T0.isoformat()}
    traces = p["links"]["traces"]
    assert traces.startswith("https://tracelake.example/traces?q=%28model%3Agpt-4o%2A%29+user%3A")
    assert f"from={int((T0 - timedelta(days=1)).timestamp() * 1000)}" in traces


def test_slack_gets_text_and_blocks_with_values_escaped():
    body = slack(_payload())
    assert body["text"].startswith("[FIRING] cost-per-user [user=")
    assert "<!channel>" not in str(body) and "<https://evil" not in str(body)
    assert "&lt;!channel&gt; &lt;https://evil.example|click&gt; &amp; co" in body["text"]
    buttons = body["blocks"][-1]["elements"]
    assert [b["text"]["text"] for b in buttons] == ["Traces", "Rule"]
    assert slack(_payload("resolved"))["text"].startswith("[RESOLVED]")


class _Smtp(socketserver.StreamRequestHandler):
    """Just enough SMTP for one message: greets, accepts every command, keeps the DATA."""

    def handle(self) -> None:
        self.wfile.write(b"220 test\r\n")
        while True:
            line = self.rfile.readline()
            if not line:
                return
            verb = line[:4].upper()
            if verb in (b"EHLO", b"HELO"):
                self.wfile.write(b"250 test\r\n")
            elif verb == b"DATA":
                self.wfile.write(b"354 go\r\n")
                data = b""
                while (chunk := self.rfile.readline()) != b".\r\n":
                    data += chunk
                self.server.messages.append(data)  # type: ignore[attr-defined]
                self.wfile.write(b"250 ok\r\n")
            elif verb == b"QUIT":
                self.wfile.write(b"221 bye\r\n")
                return
            else:
                self.wfile.write(b"250 ok\r\n")


def test_email_goes_through_smtp_as_plain_text():
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Smtp)
    server.messages = []  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        smtp = SmtpConfig("127.0.0.1", server.server_address[1], sender="alerts@tracelake.test", starttls=False)
        sender = Sender(AlertsConfig(smtp=smtp, send_timeout_s=5))
        assert sender.send("email", "oncall@example.com, lead@example.com", _payload()) == (250, "")
        assert Sender(AlertsConfig()).send("email", "a@example.com", _payload())[1].startswith("no SMTP server")
    finally:
        server.shutdown()
        server.server_close()
    (raw,) = server.messages  # type: ignore[attr-defined]
    mail = message_from_bytes(raw)
    assert mail["To"] == "oncall@example.com, lead@example.com" and mail["From"] == "alerts@tracelake.test"
    assert mail["Subject"].startswith("[FIRING] cost-per-user [user=")
    text = mail.get_payload(decode=True).decode()
    assert "Value:     $7.2500 (threshold > $5.0000)" in text and "Traces: https://tracelake.example/traces?" in text
