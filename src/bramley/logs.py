"""Logging: plain or JSON lines; a filter that keeps tokens and secrets out of every line."""
from __future__ import annotations

import json
import logging
import re

from bramley.config import Settings

_REDACT = [
    (re.compile(r"(?i)(authorization:?\s*(bearer|token)\s+)[^\s'\",]+"), r"\1[redacted]"),
    (re.compile(r"(?i)\b(bearer\s+)[0-9a-f-]{16,}"), r"\1[redacted]"),
    (re.compile(r"(?i)((token|secret|password|pin|key|bypass_code)[\"']?\s*[:=]\s*[\"']?)[^\s'\",}]+"),
     r"\1[redacted]"),
]


def redact(text: str) -> str:
    for pattern, repl in _REDACT:
        text = pattern.sub(repl, text)
    return text


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {"time": self.formatTime(record), "level": record.levelname, "logger": record.name,
               "message": record.getMessage()}
        if record.exc_info:
            out["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(out)


def configure_logging(settings: Settings) -> None:
    root = logging.getLogger("bramley")
    if getattr(root, "_bramley_configured", False):
        return
    handler = logging.StreamHandler()
    handler.addFilter(RedactingFilter())
    handler.setFormatter(JSONFormatter() if settings.log_format == "json"
                         else logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    root._bramley_configured = True  # type: ignore[attr-defined]
