"""The alerts' typed configuration, built from the flat :class:`tracelake.config.Settings` in one
place (as ``archiver/config.py``); nothing else in tracelake.alerts knows setting names."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from tracelake.durations import parse_duration


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int = 587
    user: str | None = None
    password: str | None = None
    sender: str = "tracelake@localhost"
    starttls: bool = True

    def __repr__(self) -> str:  # never the password
        return f"SmtpConfig(host={self.host!r}, port={self.port}, user={self.user!r}, starttls={self.starttls})"


@dataclass(frozen=True)
class AlertsConfig:
    every: timedelta = timedelta(minutes=1)
    rules_file: Path | None = None
    public_url: str = "http://127.0.0.1:4380"
    retry_base_s: float = 10.0
    retry_max_s: float = 600.0
    retry_attempts: int = 12
    send_timeout_s: float = 10.0
    smtp: SmtpConfig | None = None

    def backoff(self, attempts: int) -> timedelta:
        """The wait after ``attempts`` failed attempts: base, 2 x base, 4 x base ... up to the max."""
        return timedelta(seconds=min(self.retry_base_s * 2 ** max(attempts - 1, 0), self.retry_max_s))

    @classmethod
    def from_settings(cls, settings: Any) -> "AlertsConfig":
        every = parse_duration(settings.alerts_every, allow_forever=False)
        assert every is not None
        smtp = None
        if settings.smtp_host:
            password = settings.smtp_password.get_secret_value() if settings.smtp_password is not None else None
            smtp = SmtpConfig(settings.smtp_host, settings.smtp_port, settings.smtp_user, password, settings.smtp_from,
                              settings.smtp_starttls)
        host = settings.host if settings.host not in ("0.0.0.0", "::") else "127.0.0.1"
        return cls(every=max(every, timedelta(seconds=5)), rules_file=settings.alerts_file,
                   public_url=settings.alerts_public_url or f"http://{host}:{settings.ui_port}",
                   retry_base_s=settings.alerts_retry_base_s, retry_max_s=settings.alerts_retry_max_s,
                   retry_attempts=settings.alerts_retry_attempts, send_timeout_s=settings.alerts_send_timeout_s,
                   smtp=smtp)


__all__ = ["AlertsConfig", "SmtpConfig"]
